/* Every aclnnop header of the installed package, compiled as C11 and linked against libmoedist:
 * each entry point resolves, and a phase 1 with null tensors answers 161001 with a message. */
#include <stdio.h>
#include <string.h>

#include "acl/acl.h"
#include "aclnnop/aclnn_moe_distribute_combine.h"
#include "aclnnop/aclnn_moe_distribute_combine_add_rms_norm.h"
#include "aclnnop/aclnn_moe_distribute_combine_add_rms_norm_v2.h"
#include "aclnnop/aclnn_moe_distribute_combine_setup.h"
#include "aclnnop/aclnn_moe_distribute_combine_teardown.h"
#include "aclnnop/aclnn_moe_distribute_combine_v2.h"
#include "aclnnop/aclnn_moe_distribute_combine_v3.h"
#include "aclnnop/aclnn_moe_distribute_combine_v4.h"
#include "aclnnop/aclnn_moe_distribute_dispatch.h"
#include "aclnnop/aclnn_moe_distribute_dispatch_setup.h"
#include "aclnnop/aclnn_moe_distribute_dispatch_teardown.h"
#include "aclnnop/aclnn_moe_distribute_dispatch_v2.h"
#include "aclnnop/aclnn_moe_distribute_dispatch_v3.h"
#include "aclnnop/aclnn_moe_distribute_dispatch_v4.h"

typedef aclnnStatus (*OpCall)(void*, uint64_t, aclOpExecutor*, aclrtStream);

int main(void) {
    const OpCall calls[] = {aclnnMoeDistributeDispatch,         aclnnMoeDistributeDispatchV2,
                            aclnnMoeDistributeDispatchV3,       aclnnMoeDistributeDispatchV4,
                            aclnnMoeDistributeCombine,          aclnnMoeDistributeCombineV2,
                            aclnnMoeDistributeCombineV3,        aclnnMoeDistributeCombineV4,
                            aclnnMoeDistributeCombineAddRmsNorm, aclnnMoeDistributeCombineAddRmsNormV2,
                            aclnnMoeDistributeDispatchSetup,    aclnnMoeDistributeDispatchTeardown,
                            aclnnMoeDistributeCombineSetup,     aclnnMoeDistributeCombineTeardown};
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; ++i) {
        if (calls[i](NULL, 0, NULL, NULL) != 161001) {
            printf("aclnn_headers: op call %zu must refuse a null executor with 161001\n", i);
            return 1;
        }
    }
    uint64_t ws = 0;
    aclOpExecutor* exec = NULL;
    const aclnnStatus s = aclnnMoeDistributeDispatchV4GetWorkspaceSize(
        NULL, NULL, NULL, NULL, NULL, NULL, NULL, "g", 2, 0, 2, "", 0, 0, 0, 1, 0, 0, 0, 1, "",
        0, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, &ws, &exec);
    const char* message = aclGetRecentErrMsg();
    if (s != 161001 || message == NULL || strstr(message, "x") == NULL) {
        printf("aclnn_headers: DispatchV4 with a null x must be 161001 naming x, got %d\n", (int)s);
        return 1;
    }
    printf("aclnn_headers: OK (14 entry points; %s)\n", message);
    return 0;
}
