/* aclnnop/aclnn_moe_distribute_dispatch_setup.h — aclnnMoeDistributeDispatchSetup, two-phase, with
 * Ascend's signature: the send half of a V2 dispatch (docs/contract.md §13; generic profile). yOut
 * is moedist's scratch of Ascend's shape (not read), expandIdxOut V1's expandIdx over the active
 * entries, commCmdInfoOut (int32, at least 1 entry) names the call for its Teardown. */
#ifndef OP_API_INC_ACLNN_MOE_DISTRIBUTE_DISPATCH_SETUP_H_
#define OP_API_INC_ACLNN_MOE_DISTRIBUTE_DISPATCH_SETUP_H_

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Phase 1: validates the arguments and returns the workspace size (0) and an executor that the
 * phase-2 call consumes. */
MOEDIST_C_API aclnnStatus
aclnnMoeDistributeDispatchSetupGetWorkspaceSize(const aclTensor *x,
                                                const aclTensor *expertIds,
                                                const aclTensor *scalesOptional,
                                                const aclTensor *xActiveMaskOptional,
                                                const char *groupEp,
                                                int64_t epWorldSize,
                                                int64_t epRankId,
                                                int64_t moeExpertNum,
                                                int64_t expertShardType,
                                                int64_t sharedExpertNum,
                                                int64_t sharedExpertRankNum,
                                                int64_t quantMode,
                                                int64_t globalBs,
                                                int64_t commType,
                                                const char *commAlg,
                                                aclTensor *yOut,
                                                aclTensor *expandIdxOut,
                                                aclTensor *commCmdInfoOut,
                                                uint64_t *workspaceSize,
                                                aclOpExecutor **executor);

/* Phase 2: publishes this rank's rows and returns (at most 2 calls of a group in flight). */
MOEDIST_C_API aclnnStatus aclnnMoeDistributeDispatchSetup(void *workspace,
                                                          uint64_t workspaceSize,
                                                          aclOpExecutor *executor,
                                                          aclrtStream stream);

#ifdef __cplusplus
}

/* Sizes of the Setup's and Teardown's outputs, as Ascend's helper computes them (C++ only: the
 * sizes are returned through references, as in Ascend's header). tokenMsgSize = yOut's dim 1:
 * Align256(H) for quantMode 0, else Align512(Align32(H) + 4); expandIdxOutSize = BS*K;
 * assistInfoForCombineOutSize = 128*A (A this rank's capacity, docs/contract.md §10);
 * commCmdInfoOutSize = (BS*(K + sharedExpertNum) + epWorldSize*L)*16 entries. Needs no group. */
extern "C" MOEDIST_C_API aclnnStatus
aclnnMoeDistributeDispatchSetupTeardownCalcOutputSize(const aclTensor *x,
                                                      const aclTensor *expertIds,
                                                      const aclTensor *scalesOptional,
                                                      const aclTensor *xActiveMaskOptional,
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
                                                      uint64_t &tokenMsgSize,
                                                      uint64_t &expandIdxOutSize,
                                                      uint64_t &assistInfoForCombineOutSize,
                                                      uint64_t &commCmdInfoOutSize);
#endif

#endif /* OP_API_INC_ACLNN_MOE_DISTRIBUTE_DISPATCH_SETUP_H_ */
