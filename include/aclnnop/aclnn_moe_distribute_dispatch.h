/* aclnnop/aclnn_moe_distribute_dispatch.h — aclnnMoeDistributeDispatch, two-phase, as Ascend's
 * documentation declares it. Semantics: docs/contract.md §2, §3, §5, §7. */
#ifndef OP_API_INC_ACLNN_MOE_DISTRIBUTE_DISPATCH_H_
#define OP_API_INC_ACLNN_MOE_DISTRIBUTE_DISPATCH_H_

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Phase 1: validates the arguments, plans the call and returns the workspace size and an executor
 * that the phase-2 call consumes. 27 arguments. */
MOEDIST_C_API aclnnStatus aclnnMoeDistributeDispatchGetWorkspaceSize(const aclTensor *x,
                                                                     const aclTensor *expertIds,
                                                                     const aclTensor *scales,
                                                                     const aclTensor *xActiveMask,
                                                                     const aclTensor *expertScales,
                                                                     const char *groupEp,
                                                                     int64_t epWorldSize,
                                                                     int64_t epRankId,
                                                                     int64_t moeExpertNum,
                                                                     const char *groupTp,
                                                                     int64_t tpWorldSize,
                                                                     int64_t tpRankId,
                                                                     int64_t expertShardType,
                                                                     int64_t sharedExpertNum,
                                                                     int64_t sharedExpertRankNum,
                                                                     int64_t quantMode,
                                                                     int64_t globalBs,
                                                                     int64_t expertTokenNumsType,
                                                                     aclTensor *expandX,
                                                                     aclTensor *dynamicScales,
                                                                     aclTensor *expandIdx,
                                                                     aclTensor *expertTokenNums,
                                                                     aclTensor *epRecvCounts,
                                                                     aclTensor *tpRecvCounts,
                                                                     aclTensor *expandScales,
                                                                     uint64_t *workspaceSize,
                                                                     aclOpExecutor **executor);

/* Phase 2: runs the planned dispatch on `stream` and releases the executor. */
MOEDIST_C_API aclnnStatus aclnnMoeDistributeDispatch(void *workspace,
                                                     uint64_t workspaceSize,
                                                     aclOpExecutor *executor,
                                                     aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif /* OP_API_INC_ACLNN_MOE_DISTRIBUTE_DISPATCH_H_ */
