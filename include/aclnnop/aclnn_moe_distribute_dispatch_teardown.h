/* aclnnop/aclnn_moe_distribute_dispatch_teardown.h — aclnnMoeDistributeDispatchTeardown, two-phase,
 * with Ascend's signature: the receive half of the dispatch its Setup started (docs/contract.md
 * §13). Its outputs equal DispatchV4's for the same inputs; epRecvCounts stays with moedist
 * (Ascend's Teardown has no such output) and reaches the CombineTeardown through
 * assistInfoForCombine. */
#ifndef OP_API_INC_ACLNN_MOE_DISTRIBUTE_DISPATCH_TEARDOWN_H_
#define OP_API_INC_ACLNN_MOE_DISTRIBUTE_DISPATCH_TEARDOWN_H_

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Phase 1: validates the arguments and returns the workspace size (0) and an executor that the
 * phase-2 call consumes. */
MOEDIST_C_API aclnnStatus
aclnnMoeDistributeDispatchTeardownGetWorkspaceSize(const aclTensor *x,
                                                   const aclTensor *y,
                                                   const aclTensor *expertIds,
                                                   const aclTensor *commCmdInfo,
                                                   const char *groupEp,
                                                   int64_t epWorldSize,
                                                   int64_t epRankId,
                                                   int64_t moeExpertNum,
                                                   int64_t expertShardType,
                                                   int64_t sharedExpertNum,
                                                   int64_t sharedExpertRankNum,
                                                   int64_t quantMode,
                                                   int64_t globalBs,
                                                   int64_t expertTokenNumsType,
                                                   int64_t commType,
                                                   const char *commAlg,
                                                   aclTensor *expandXOut,
                                                   aclTensor *dynamicScalesOut,
                                                   aclTensor *assistInfoForCombineOut,
                                                   aclTensor *expertTokenNumsOut,
                                                   uint64_t *workspaceSize,
                                                   aclOpExecutor **executor);

/* Phase 2: waits for the peers, writes the outputs, completes the call (in call order). */
MOEDIST_C_API aclnnStatus aclnnMoeDistributeDispatchTeardown(void *workspace,
                                                             uint64_t workspaceSize,
                                                             aclOpExecutor *executor,
                                                             aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif /* OP_API_INC_ACLNN_MOE_DISTRIBUTE_DISPATCH_TEARDOWN_H_ */
