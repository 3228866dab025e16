// aclnnMoeDistributeDispatch: the two-phase C API over core::prepare_dispatch / run_dispatch.
#include "aclnnop/aclnn_moe_distribute_dispatch.h"
#include "api/facade.hpp"
#include "core/shapes.hpp"

namespace moedist::api {
namespace {

// The arguments of aclnnMoeDistributeDispatchGetWorkspaceSize, in its order.
struct DispatchArgs {
    const aclTensor* x;
    const aclTensor* expert_ids;
    const aclTensor* scales;
    const aclTensor* x_active_mask;  // reserved: only whether it is given matters (A3 profile)
    const aclTensor* expert_scales;
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
    int64_t quant_mode;
    int64_t global_bs;
    int64_t expert_token_nums_type;
    aclTensor* expand_x;
    aclTensor* dynamic_scales;
    aclTensor* expand_idx;
    aclTensor* expert_token_nums;
    aclTensor* ep_recv_counts;
    aclTensor* tp_recv_counts;
    aclTensor* expand_scales;
};

Status prepare_checked(const DispatchArgs& a, core::DispatchOp* op, Bindings* bindings) {
    MoeConfig config;
    config.ep_world_size = a.ep_world_size;
    config.ep_rank_id = a.ep_rank_id;
    config.moe_expert_num = a.moe_expert_num;
    config.tp_world_size = a.tp_world_size;
    config.tp_rank_id = a.tp_rank_id;
    config.expert_shard_type = a.expert_shard_type;
    config.shared_expert_num = a.shared_expert_num;
    config.shared_expert_rank_num = a.shared_expert_rank_num;
    config.quant_mode = a.quant_mode;
    config.global_bs = a.global_bs;
    config.expert_token_nums_type = a.expert_token_nums_type;

    DispatchInputs in;
    DispatchOutputs out;
    // Required tensors (161001), then dtypes moedist knows (161002), then their blocks.
    if (Status s = view_of(a.x, "x", &in.x, bindings); !s.ok()) return s;
    if (Status s = view_of(a.expert_ids, "expertIds", &in.expert_ids, bindings); !s.ok()) return s;
    if (Status s = view_of(a.expand_x, "expandX", &out.expand_x, bindings); !s.ok()) return s;
    if (Status s = view_of(a.expand_idx, "expandIdx", &out.expand_idx, bindings); !s.ok()) return s;
    if (Status s =
            view_of(a.expert_token_nums, "expertTokenNums", &out.expert_token_nums, bindings);
        !s.ok())
        return s;
    if (Status s = view_of(a.ep_recv_counts, "epRecvCounts", &out.ep_recv_counts, bindings);
        !s.ok())
        return s;
    if (Status s = optional_view_of(a.scales, "scales", &in.scales, bindings); !s.ok()) return s;
    if (Status s = optional_view_of(a.expert_scales, "expertScales", &in.expert_scales, bindings);
        !s.ok())
        return s;
    if (Status s = optional_view_of(a.expand_scales, "expandScales", &out.expand_scales, bindings);
        !s.ok())
        return s;
    // dynamicScales only when the mode makes scales; tpRecvCounts only when T == 2.
    if (core::mode_makes_scales(static_cast<QuantMode>(a.quant_mode), in.x.dtype)) {
        if (Status s =
                optional_view_of(a.dynamic_scales, "dynamicScales", &out.dynamic_scales, bindings);
            !s.ok())
            return s;
    }
    if (config.tp_size() == 2) {
        if (Status s =
                optional_view_of(a.tp_recv_counts, "tpRecvCounts", &out.tp_recv_counts, bindings);
            !s.ok())
            return s;
    }
    if (Status s = config.validate(); !s.ok()) return s;

    Communicator ep;
    std::optional<Communicator> tp;
    if (Status s = find_groups(config, a.group_ep, a.group_tp, &ep, &tp); !s.ok()) return s;
    return core::prepare_dispatch(
        config, ep, tp, in, out, call_extras(a.group_tp, a.x_active_mask != nullptr), op);
}


// A first phase that fails here fails the peers' matching call too, at once (facade.hpp).
Status prepare(const DispatchArgs& a, core::DispatchOp* op, Bindings* bindings) {
    return prepare_or_abort(a, op, bindings, prepare_checked);
}

}  // namespace
}  // namespace moedist::api

extern "C" {

aclnnStatus aclnnMoeDistributeDispatchGetWorkspaceSize(const aclTensor* x,
                                                       const aclTensor* expertIds,
                                                       const aclTensor* scales,
                                                       const aclTensor* xActiveMask,
                                                       const aclTensor* expertScales,
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
                                                       int64_t quantMode,
                                                       int64_t globalBs,
                                                       int64_t expertTokenNumsType,
                                                       aclTensor* expandX,
                                                       aclTensor* dynamicScales,
                                                       aclTensor* expandIdx,
                                                       aclTensor* expertTokenNums,
                                                       aclTensor* epRecvCounts,
                                                       aclTensor* tpRecvCounts,
                                                       aclTensor* expandScales,
                                                       uint64_t* workspaceSize,
                                                       aclOpExecutor** executor) {
    using namespace moedist;
    const api::DispatchArgs args{x,
                                 expertIds,
                                 scales,
                                 xActiveMask,
                                 expertScales,
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
                                 quantMode,
                                 globalBs,
                                 expertTokenNumsType,
                                 expandX,
                                 dynamicScales,
                                 expandIdx,
                                 expertTokenNums,
                                 epRecvCounts,
                                 tpRecvCounts,
                                 expandScales};
    return api::phase_one<core::DispatchOp>("aclnnMoeDistributeDispatchGetWorkspaceSize",
                                            workspaceSize,
                                            executor,
                                            [&](core::DispatchOp* op, api::Bindings* bindings) {
                                                return api::prepare(args, op, bindings);
                                            });
}

aclnnStatus aclnnMoeDistributeDispatch(void* workspace,
                                       uint64_t workspaceSize,
                                       aclOpExecutor* executor,
                                       aclrtStream stream) {
    (void)workspace;
    (void)workspaceSize;
    return moedist::api::run_executor<moedist::core::DispatchOp>(
        executor, stream, "aclnnMoeDistributeDispatch");
}

}  // extern "C"
