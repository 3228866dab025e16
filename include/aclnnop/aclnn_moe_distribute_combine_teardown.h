/* aclnnop/aclnn_moe_distribute_combine_teardown.h — aclnnMoeDistributeCombineTeardown, two-phase,
 * with Ascend's signature: the combine its Setup recorded; xOut equals CombineV4's for the same
 * inputs (docs/contract.md §13). expandIdx (the Setup's) and quantExpandX are not read. */
#ifndef OP_API_INC_ACLNN_MOE_DISTRIBUTE_COMBINE_TEARDOWN_H_
#define OP_API_INC_ACLNN_MOE_DISTRIBUTE_COMBINE_TEARDOWN_H_

#include "aclnn/acl_meta.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Phase 1: validates the arguments and returns the workspace size (0) and an executor that the
 * phase-2 call consumes. */
MOEDIST_C_API aclnnStatus
aclnnMoeDistributeCombineTeardownGetWorkspaceSize(const aclTensor *expandX,
                                                  const aclTensor *quantExpandX,
                                                  const aclTensor *expertIds,
                                                  const aclTensor *expandIdx,
                                                  const aclTensor *expertScales,
                                                  const aclTensor *commCmdInfo,
                                                  const aclTensor *xActiveMaskOptional,
                                                  const aclTensor *sharedExpertXOptional,
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
                                                  aclTensor *xOut,
                                                  uint64_t *workspaceSize,
                                                  aclOpExecutor **executor);

/* Phase 2: combines into xOut. */
MOEDIST_C_API aclnnStatus aclnnMoeDistributeCombineTeardown(void *workspace,
                                                            uint64_t workspaceSize,
                                                            aclOpExecutor *executor,
                                                            aclrtStream stream);

#ifdef __cplusplus
}
#endif

#endif /* OP_API_INC_ACLNN_MOE_DISTRIBUTE_COMBINE_TEARDOWN_H_ */
