/* aclnnop/aclnn_moe_distribute_dispatch_v3.h — aclnnMoeDistributeDispatchV3, two-phase, with
 * Ascend's signature. Semantics: docs/contract.md §10. */
#ifndef OP_API_INC_ACLNN_MOE_DISTRIBUTE_DISPATCH_V3_H_
#define OP_API_INC_ACLNN_MOE_DISTRIBUTE_DISPATCH_V3_H_

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Phase 1: validates the arguments, plans the call and returns the workspace size (0) and an
 * executor that the phase-2 call consumes. 32 arguments: V2's plus elasticInfoOptional (must be
 * null: elastic scaling is not supported, 561002) and zeroExpertNum, copyExpertNum,
 * constExpertNum. */
MOEDIST_C_API aclnnStatus
aclnnMoeDistributeDispatchV3GetWorkspaceSize(const aclTensor *x,
                                             const aclTensor *expertIds,
                                             const aclTensor *scalesOptional,
                                             const aclTensor *xActiveMaskOptional,
                                             const aclTensor *expertScalesOptional,
                                             const aclTensor *elasticInfoOptional,
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
                                             const char *commAlg,
                                             int64_t zeroExpertNum,
                                             int64_t copyExpertNum,
                                             int64_t constExpertNum,
                                             aclTensor *expandXOut,
                                             aclTensor *dynamicScalesOut,
                                             aclTensor *assistInfoForCombineOut,
                                             aclTensor *expertTokenNumsOut,
                                             aclTensor *epRecvCountsOut,
                                             aclTensor *tpRecvCountsOut,
                                             aclTensor *expandScalesOut,
                                             uint64_t *workspaceSize,
                                             aclOpExecutor **executor);

/* Phase 2: runs the planned dispatch on `stream` and releases the executor. */
MOEDIST_C_API aclnnStatus aclnnMoeDistributeDispatchV3(void *workspace,
                                                       uint64_t workspaceSize,
                                                       aclOpExecutor *executor,
                                                       aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif /* OP_API_INC_ACLNN_MOE_DISTRIBUTE_DISPATCH_V3_H_ */
