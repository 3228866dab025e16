/* aclnnop/aclnn_moe_distribute_combine.h — aclnnMoeDistributeCombine, two-phase, with CANN's
 * signature (the arguments Ascend's samples pass). Semantics: docs/contract.md §4, §7. */
#ifndef OP_API_INC_ACLNN_MOE_DISTRIBUTE_COMBINE_H_
#define OP_API_INC_ACLNN_MOE_DISTRIBUTE_COMBINE_H_

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Phase 1: validates the arguments, plans the call and returns the workspace size and an executor
 * that the phase-2 call consumes. xActiveMask, activationScale, weightScale, groupList and
 * expandScales are reserved (ignored). */
MOEDIST_C_API aclnnStatus
aclnnMoeDistributeCombineGetWorkspaceSize(const aclTensor *expandX,
                                          const aclTensor *expertIds,
                                          const aclTensor *expandIdx,
                                          const aclTensor *epSendCounts,
                                          const aclTensor *expertScales,
                                          const aclTensor *tpSendCounts,
                                          const aclTensor *xActiveMask,
                                          const aclTensor *activationScale,
                                          const aclTensor *weightScale,
                                          const aclTensor *groupList,
                                          const aclTensor *expandScales,
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
                                          int64_t globalBs,
                                          int64_t outDtype,
                                          int64_t commQuantMode,
                                          int64_t groupListType,
                                          aclTensor *x,
                                          uint64_t *workspaceSize,
                                          aclOpExecutor **executor);

/* Phase 2: runs the planned combine on `stream` and releases the executor. */
MOEDIST_C_API aclnnStatus aclnnMoeDistributeCombine(void *workspace,
                                                    uint64_t workspaceSize,
                                                    aclOpExecutor *executor,
                                                    aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif /* OP_API_INC_ACLNN_MOE_DISTRIBUTE_COMBINE_H_ */
