/* aclnnop/aclnn_moe_distribute_combine_setup.h — aclnnMoeDistributeCombineSetup, two-phase, with
 * Ascend's signature (docs/contract.md §13). Ascend gives the weights and the mask only to the
 * Teardown, so moedist's Setup records the call (commCmdInfoOut names it) and its Teardown runs the
 * whole combine; quantExpandXOut is scratch of Ascend's shape (not written). */
#ifndef OP_API_INC_ACLNN_MOE_DISTRIBUTE_COMBINE_SETUP_H_
#define OP_API_INC_ACLNN_MOE_DISTRIBUTE_COMBINE_SETUP_H_

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Phase 1: validates the arguments and returns the workspace size (0) and an executor that the
 * phase-2 call consumes. */
MOEDIST_C_API aclnnStatus
aclnnMoeDistributeCombineSetupGetWorkspaceSize(const aclTensor *expandX,
                                               const aclTensor *expertIds,
                                               const aclTensor *assistInfoForCombine,
                                               const char *groupEp,
                                               int64_t epWorldSize,
                                               int64_t epRankId,
                                               int64_t moeExpertNum,
                                               int64_t expertShardType,
                                               int64_t sharedExpertNum,
                                               int64_t sharedExpertRankNum,
                                               int64_t globalBs,
                                               int64_t commQuantMode,
                                               int64_t commType,
                                               const char *commAlg,
                                               aclTensor *quantExpandXOut,
                                               aclTensor *commCmdInfoOut,
                                               uint64_t *workspaceSize,
                                               aclOpExecutor **executor);

/* Phase 2: records the call for its Teardown. */
MOEDIST_C_API aclnnStatus aclnnMoeDistributeCombineSetup(void *workspace,
                                                         uint64_t workspaceSize,
                                                         aclOpExecutor *executor,
                                                         aclrtStream stream);

#ifdef __cplusplus
}

/* Sizes of the CombineSetup's outputs, as Ascend's helper computes them (C++ only: returned
 * through references, as in Ascend's header), from expandX (A, H): tokenMsgSize =
 * quantExpandXOut's dim 1 = Align512(Align32(H) + Align8(H)/8*4); commCmdInfoOutSize =
 * (A + epWorldSize)*16 entries. Needs no group. */
extern "C" MOEDIST_C_API aclnnStatus
aclnnMoeDistributeCombineSetupTeardownCalcOutputSize(const aclTensor *expandX,
                                                     const aclTensor *expertIds,
                                                     const aclTensor *assistInfoForCombine,
                                                     const char *groupEp,
                                                     int64_t epWorldSize,
                                                     int64_t epRankId,
                                                     int64_t moeExpertNum,
                                                     int64_t expertShardType,
                                                     int64_t sharedExpertNum,
                                                     int64_t sharedExpertRankNum,
                                                     int64_t globalBs,
                                                     int64_t commQuantMode,
                                                     int64_t commType,
                                                     const char *commAlg,
                                                     uint64_t &tokenMsgSize,
                                                     uint64_t &commCmdInfoOutSize);
#endif

#endif /* OP_API_INC_ACLNN_MOE_DISTRIBUTE_COMBINE_SETUP_H_ */
