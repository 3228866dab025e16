// aclnnMoeDistributeCombine: the two-phase C API over core::prepare_combine / run_combine.
#include <exception>

#include "aclnnop/aclnn_moe_distribute_combine.h"
#include "api/facade.hpp"

namespace moedist::api {
namespace {

Status prepare(const aclTensor* expandX,
               const aclTensor* expertIds,
               const aclTensor* expandIdx,
               const aclTensor* epSendCounts,
               const aclTensor* expertScales,
               const aclTensor* tpSendCounts,
               bool x_active_mask_given,
               const char* groupEp,
               int64_t epWorldSize,
               int64_t epRankId,
               int64_t moeExpertNum,
               const char* groupTp,
               int64_t tpWorldSize,
               int64_t tpRankId,
               int64_t expertShardType,
               int64_t sharedExpertNum,
               int64_t sharedExpertRankNum,
               int64_t globalBs,
               int64_t outDtype,
               int64_t commQuantMode,
               aclTensor* x,
               core::CombineOp* op) {
    MoeConfig config;
    config.ep_world_size = epWorldSize;
    config.ep_rank_id = epRankId;
    config.moe_expert_num = moeExpertNum;
    config.tp_world_size = tpWorldSize;
    config.tp_rank_id = tpRankId;
    config.expert_shard_type = expertShardType;
    config.shared_expert_num = sharedExpertNum;
    config.shared_expert_rank_num = sharedExpertRankNum;
    config.global_bs = globalBs;
    config.comm_quant_mode = commQuantMode;

    CombineInputs in;
    TensorView x_out;
    if (Status s = view_of(expandX, "expandX", &in.expand_x); !s.ok()) return s;
    if (Status s = view_of(expertIds, "expertIds", &in.expert_ids); !s.ok()) return s;
    if (Status s = view_of(expandIdx, "expandIdx", &in.expand_idx); !s.ok()) return s;
    if (Status s = view_of(epSendCounts, "epSendCounts", &in.ep_send_counts); !s.ok()) return s;
    if (Status s = view_of(expertScales, "expertScales", &in.expert_scales); !s.ok()) return s;
    if (Status s = view_of(x, "x", &x_out); !s.ok()) return s;
    if (config.tp_size() == 2) {
        if (Status s = optional_view_of(tpSendCounts, "tpSendCounts", &in.tp_send_counts); !s.ok())
            return s;
    }
    if (outDtype != 0) {
        return {Code::kInnerTiling, "outDtype must be 0, got " + std::to_string(outDtype)};
    }
    if (Status s = config.validate(); !s.ok()) return s;

    Communicator ep;
    std::optional<Communicator> tp;
    if (Status s = find_groups(config, groupEp, groupTp, &ep, &tp); !s.ok()) return s;
    return core::prepare_combine(
        config, ep, tp, in, x_out, call_extras(groupTp, x_active_mask_given), op);
}

}  // namespace
}  // namespace moedist::api

extern "C" {

aclnnStatus aclnnMoeDistributeCombineGetWorkspaceSize(const aclTensor* expandX,
                                                      const aclTensor* expertIds,
                                                      const aclTensor* expandIdx,
                                                      const aclTensor* epSendCounts,
                                                      const aclTensor* expertScales,
                                                      const aclTensor* tpSendCounts,
                                                      const aclTensor* xActiveMask,
                                                      const aclTensor* activationScale,
                                                      const aclTensor* weightScale,
                                                      const aclTensor* groupList,
                                                      const aclTensor* expandScales,
                                                      const char* groupEp,
                                                      int64_t epWorldSize,
                                                      int64_t epRankId,
                                                      int64_t moeExpertNum,
                                                      const char* groupTp,
                                                      int64_t tpWorldSize,
                                                      int64_t tpRankId,
                                                      int64_t expertShardType,
                                                      int64_t sharedExpertNum,
                                                      int64_t sharedExpertRankNum,
                                                      int64_t globalBs,
                                                      int64_t outDtype,
                                                      int64_t commQuantMode,
                                                      int64_t groupListType,
                                                      aclTensor* x,
                                                      uint64_t* workspaceSize,
                                                      aclOpExecutor** executor) {
    using namespace moedist;
    // Reserved (SPEC §4): ignored whatever they hold (the A3 profile requires xActiveMask null).
    (void)activationScale;
    (void)weightScale;
    (void)groupList;
    (void)expandScales;
    (void)groupListType;
    return api::phase_one<core::CombineOp>("aclnnMoeDistributeCombineGetWorkspaceSize",
                                           workspaceSize,
                                           executor,
                                           [&](core::CombineOp* op) {
                                               return api::prepare(expandX,
                                                                   expertIds,
                                                                   expandIdx,
                                                                   epSendCounts,
                                                                   expertScales,
                                                                   tpSendCounts,
                                                                   xActiveMask != nullptr,
                                                                   groupEp,
                                                                   epWorldSize,
                                                                   epRankId,
                                                                   moeExpertNum,
                                                                   groupTp,
                                                                   tpWorldSize,
                                                                   tpRankId,
                                                                   expertShardType,
                                                                   sharedExpertNum,
                                                                   sharedExpertRankNum,
                                                                   globalBs,
                                                                   outDtype,
                                                                   commQuantMode,
                                                                   x,
                                                                   op);
                                           });
}

aclnnStatus aclnnMoeDistributeCombine(void* workspace,
                                      uint64_t workspaceSize,
                                      aclOpExecutor* executor,
                                      aclrtStream stream) {
    (void)workspace;
    (void)workspaceSize;
    return moedist::api::run_executor(executor, stream, "aclnnMoeDistributeCombine");
}

}  // extern "C"
