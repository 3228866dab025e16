// aclnnMoeDistributeCombine: the two-phase C API over core::prepare_combine / run_combine.
#include "aclnnop/aclnn_moe_distribute_combine.h"
#include "api/facade.hpp"

namespace moedist::api {
namespace {

// The arguments of aclnnMoeDistributeCombineGetWorkspaceSize that moedist reads, in its order.
// xActiveMask, activationScale, weightScale, groupList, expandScales and groupListType are
// reserved (docs/contract.md §4): ignored whatever they hold (the A3 profile requires xActiveMask null).
struct CombineArgs {
    const aclTensor* expand_x;
    const aclTensor* expert_ids;
    const aclTensor* expand_idx;
    const aclTensor* ep_send_counts;
    const aclTensor* expert_scales;
    const aclTensor* tp_send_counts;
    const aclTensor* x_active_mask;
    const char* group_ep;
    int64_t ep_world_size;
    int64_t ep_rank_id;
    int64_t moe_expert_num;
    const char* group_tp;
    int64_t tp_world_size;
    int64_t tp_rank_id;
    int64_t expert_shard_type;
    int64_t shared_expert_num;
    int64_t shared_expert_rank_num;
    int64_t global_bs;
    int64_t out_dtype;
    int64_t comm_quant_mode;
    aclTensor* x;
};

Status prepare_checked(const CombineArgs& a, core::CombineOp* op, Bindings* bindings) {
    MoeConfig config;
    config.ep_world_size = a.ep_world_size;
    config.ep_rank_id = a.ep_rank_id;
    config.moe_expert_num = a.moe_expert_num;
    config.tp_world_size = a.tp_world_size;
    config.tp_rank_id = a.tp_rank_id;
    config.expert_shard_type = a.expert_shard_type;
    config.shared_expert_num = a.shared_expert_num;
    config.shared_expert_rank_num = a.shared_expert_rank_num;
    config.global_bs = a.global_bs;
    config.comm_quant_mode = a.comm_quant_mode;

    CombineInputs in;
    TensorView x_out;
    if (Status s = view_of(a.expand_x, "expandX", &in.expand_x, bindings); !s.ok()) return s;
    if (Status s = view_of(a.expert_ids, "expertIds", &in.expert_ids, bindings); !s.ok()) return s;
    if (Status s = view_of(a.expand_idx, "expandIdx", &in.expand_idx, bindings); !s.ok()) return s;
    if (Status s = view_of(a.ep_send_counts, "epSendCounts", &in.ep_send_counts, bindings); !s.ok())
        return s;
    if (Status s = view_of(a.expert_scales, "expertScales", &in.expert_scales, bindings); !s.ok())
        return s;
    if (Status s = view_of(a.x, "x", &x_out, bindings); !s.ok()) return s;
    if (config.tp_size() == 2) {
        if (Status s =
                optional_view_of(a.tp_send_counts, "tpSendCounts", &in.tp_send_counts, bindings);
            !s.ok())
            return s;
    }
    if (a.out_dtype != 0) {
        return {Code::kInnerTiling, "outDtype must be 0, got " + std::to_string(a.out_dtype)};
    }
    if (Status s = config.validate(); !s.ok()) return s;

    Communicator ep;
    std::optional<Communicator> tp;
    if (Status s = find_groups(config, a.group_ep, a.group_tp, &ep, &tp); !s.ok()) return s;
    return core::prepare_combine(
        config, ep, tp, in, x_out, call_extras(a.group_tp, a.x_active_mask != nullptr), op);
}


// A first phase that fails here fails the peers' matching call too, at once (facade.hpp).
Status prepare(const CombineArgs& a, core::CombineOp* op, Bindings* bindings) {
    return prepare_or_abort(a, op, bindings, prepare_checked);
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
    (void)activationScale;
    (void)weightScale;
    (void)groupList;
    (void)expandScales;
    (void)groupListType;
    const api::CombineArgs args{expandX,
                                expertIds,
                                expandIdx,
                                epSendCounts,
                                expertScales,
                                tpSendCounts,
                                xActiveMask,
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
                                x};
    return api::phase_one<core::CombineOp>("aclnnMoeDistributeCombineGetWorkspaceSize",
                                           workspaceSize,
                                           executor,
                                           [&](core::CombineOp* op, api::Bindings* bindings) {
                                               return api::prepare(args, op, bindings);
                                           });
}

aclnnStatus aclnnMoeDistributeCombine(void* workspace,
                                      uint64_t workspaceSize,
                                      aclOpExecutor* executor,
                                      aclrtStream stream) {
    (void)workspace;
    (void)workspaceSize;
    return moedist::api::run_executor<moedist::core::CombineOp>(
        executor, stream, "aclnnMoeDistributeCombine");
}

}  // extern "C"
