/* aclnnop/aclnn_moe_distribute_combine_add_rms_norm.h — aclnnMoeDistributeCombineAddRmsNorm,
 * two-phase, with Ascend's signature. Semantics: docs/contract.md §10. */
#ifndef OP_API_INC_ACLNN_MOE_DISTRIBUTE_COMBINE_ADD_RMS_NORM_H_
#define OP_API_INC_ACLNN_MOE_DISTRIBUTE_COMBINE_ADD_RMS_NORM_H_

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Phase 1: validates the arguments, plans the call and returns the workspace size (0) and an
 * executor that the phase-2 call consumes. 35 arguments: CombineV2's inputs with residualX (BS, 1,
 * H) and gamma (H,) after expertScales, normEps after commAlg, and the outputs yOut (BS, 1, H),
 * rstdOut (BS, 1, 1) fp32 and xOut (BS, 1, H) = the combined tokens plus residualX. Reserved
 * inputs as in CombineV2. */
MOEDIST_C_API aclnnStatus
aclnnMoeDistributeCombineAddRmsNormGetWorkspaceSize(const aclTensor *expandX,
                                                    const aclTensor *expertIds,
                                                    const aclTensor *assistInfoForCombine,
                                                    const aclTensor *epSendCounts,
                                                    const aclTensor *expertScales,
                                                    const aclTensor *residualX,
                                                    const aclTensor *gamma,
                                                    const aclTensor *tpSendCountsOptional,
                                                    const aclTensor *xActiveMaskOptional,
                                                    const aclTensor *activationScaleOptional,
                                                    const aclTensor *weightScaleOptional,
                                                    const aclTensor *groupListOptional,
                                                    const aclTensor *expandScalesOptional,
                                                    const aclTensor *sharedExpertXOptional,
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
                                                    const char *commAlg,
                                                    float normEps,
                                                    aclTensor *yOut,
                                                    aclTensor *rstdOut,
                                                    aclTensor *xOut,
                                                    uint64_t *workspaceSize,
                                                    aclOpExecutor **executor);

/* Phase 2: runs the planned combine and Add + RmsNorm on `stream` and releases the executor. */
MOEDIST_C_API aclnnStatus aclnnMoeDistributeCombineAddRmsNorm(void *workspace,
                                                              uint64_t workspaceSize,
                                                              aclOpExecutor *executor,
                                                              aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif /* OP_API_INC_ACLNN_MOE_DISTRIBUTE_COMBINE_ADD_RMS_NORM_H_ */
