// aclnnMoeDistributeDispatchV2 / V3 / V4: the two-phase C API of the V2 family's dispatch
// (docs/contract.md §10) over core::prepare_dispatch / run_dispatch. One argument set (V4's) and
// one first phase for the three: V2 and V3 give what they lack as null / 0.
#include "aclnnop/aclnn_moe_distribute_dispatch_v2.h"
#include "aclnnop/aclnn_moe_distribute_dispatch_v3.h"
#include "aclnnop/aclnn_moe_distribute_dispatch_v4.h"
#include "api/facade.hpp"
#include "core/shapes.hpp"

namespace moedist::api {
namespace {

// The arguments of aclnnMoeDistributeDispatchV4GetWorkspaceSize, in its order (V2: no
// elasticInfo, performanceInfo or special experts; V3: no performanceInfo).
struct DispatchV2Args {
    const aclTensor* x;
    const aclTensor* expert_ids;
    const aclTensor* scales;
    const aclTensor* x_active_mask;  // honoured (docs/contract.md §10.2)
    const aclTensor* expert_scales;
    const aclTensor* elastic_info;      // must be null (561002)
    const aclTensor* performance_info;  // int64 (W,), added to
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
    const char* comm_alg;  // null: ""
    int64_t zero_expert_num;
    int64_t copy_expert_num;
    int64_t const_expert_num;
    aclTensor* expand_x;
    aclTensor* dynamic_scales;
    aclTensor* assist_info;  // assistInfoForCombineOut: required
    aclTensor* expert_token_nums;
    aclTensor* ep_recv_counts;
    aclTensor* tp_recv_counts;
    aclTensor* expand_scales;
    int op_version = 4;  // which entry point (the A3 profile's V4 rules)
};

core::CallExtras extras_of(const DispatchV2Args& a) {
    core::CallExtras extras = call_extras(a.group_tp, a.x_active_mask != nullptr);
    extras.op_version = a.op_version;
    return extras;
}

Status prepare_checked(const DispatchV2Args& a, core::DispatchOp* op, Bindings* bindings) {
    MoeConfig config;
    config.api = Api::kV2;
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
    config.zero_expert_num = a.zero_expert_num;
    config.copy_expert_num = a.copy_expert_num;
    config.const_expert_num = a.const_expert_num;
    config.comm_alg = comm_alg_of(a.comm_alg);

    DispatchInputs in;
    DispatchOutputs out;  // no expandIdx in V2: out.expand_idx stays an empty view
    // Required tensors (161001), then dtypes moedist knows (161002), then their blocks.
    if (Status s = view_of(a.x, "x", &in.x, bindings); !s.ok()) return s;
    if (Status s = view_of(a.expert_ids, "expertIds", &in.expert_ids, bindings); !s.ok()) return s;
    if (Status s = view_of(a.expand_x, "expandX", &out.expand_x, bindings); !s.ok()) return s;
    TensorView assist;
    if (Status s = view_of(a.assist_info, "assistInfoForCombine", &assist, bindings); !s.ok())
        return s;
    out.assist_info = assist;
    if (Status s =
            view_of(a.expert_token_nums, "expertTokenNums", &out.expert_token_nums, bindings);
        !s.ok())
        return s;
    if (Status s = view_of(a.ep_recv_counts, "epRecvCounts", &out.ep_recv_counts, bindings);
        !s.ok())
        return s;
    if (Status s = optional_view_of(a.scales, "scales", &in.scales, bindings); !s.ok()) return s;
    if (Status s = optional_view_of(a.x_active_mask, "xActiveMask", &in.x_active_mask, bindings);
        !s.ok())
        return s;
    if (Status s = optional_view_of(a.expert_scales, "expertScales", &in.expert_scales, bindings);
        !s.ok())
        return s;
    if (Status s = optional_view_of(a.expand_scales, "expandScales", &out.expand_scales, bindings);
        !s.ok())
        return s;
    if (Status s = optional_view_of(
            a.performance_info, "performanceInfo", &out.performance_info, bindings);
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
    if (Status s = refuse_elastic_info(a.elastic_info); !s.ok()) return s;
    if (Status s = config.validate(); !s.ok()) return s;

    Communicator ep;
    std::optional<Communicator> tp;
    if (Status s = find_groups(config, a.group_ep, a.group_tp, &ep, &tp); !s.ok()) return s;
    // The mask is an input here (in.x_active_mask), not V1's reserved one.
    return core::prepare_dispatch(config, ep, tp, in, out, extras_of(a), op);
}

// A first phase that fails here fails the peers' matching call too, at once (facade.hpp).
Status prepare(const DispatchV2Args& a, core::DispatchOp* op, Bindings* bindings) {
    return prepare_or_abort(a, op, bindings, prepare_checked);
}

aclnnStatus dispatch_phase_one(const char* op_name,
                               const DispatchV2Args& args,
                               uint64_t* workspace_size,
                               aclOpExecutor** executor) {
    return phase_one<core::DispatchOp>(
        op_name, workspace_size, executor, [&](core::DispatchOp* op, Bindings* bindings) {
            return prepare(args, op, bindings);
        });
}

}  // namespace
}  // namespace moedist::api

extern "C" {

aclnnStatus aclnnMoeDistributeDispatchV4GetWorkspaceSize(const aclTensor* x,
                                                         const aclTensor* expertIds,
                                                         const aclTensor* scalesOptional,
                                                         const aclTensor* xActiveMaskOptional,
                                                         const aclTensor* expertScalesOptional,
                                                         const aclTensor* elasticInfoOptional,
                                                         const aclTensor* performanceInfoOptional,
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
                                                         const char* commAlg,
                                                         int64_t zeroExpertNum,
                                                         int64_t copyExpertNum,
                                                         int64_t constExpertNum,
                                                         aclTensor* expandXOut,
                                                         aclTensor* dynamicScalesOut,
                                                         aclTensor* assistInfoForCombineOut,
                                                         aclTensor* expertTokenNumsOut,
                                                         aclTensor* epRecvCountsOut,
                                                         aclTensor* tpRecvCountsOut,
                                                         aclTensor* expandScalesOut,
                                                         uint64_t* workspaceSize,
                                                         aclOpExecutor** executor) {
    moedist::api::DispatchV2Args args{x,
                                            expertIds,
                                            scalesOptional,
                                            xActiveMaskOptional,
                                            expertScalesOptional,
                                            elasticInfoOptional,
                                            performanceInfoOptional,
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
                                            commAlg,
                                            zeroExpertNum,
                                            copyExpertNum,
                                            constExpertNum,
                                            expandXOut,
                                            dynamicScalesOut,
                                            assistInfoForCombineOut,
                                            expertTokenNumsOut,
                                            epRecvCountsOut,
                                            tpRecvCountsOut,
                                            expandScalesOut};
    args.op_version = 4;
    return moedist::api::dispatch_phase_one(
        "aclnnMoeDistributeDispatchV4GetWorkspaceSize", args, workspaceSize, executor);
}

aclnnStatus aclnnMoeDistributeDispatchV3GetWorkspaceSize(const aclTensor* x,
                                                         const aclTensor* expertIds,
                                                         const aclTensor* scalesOptional,
                                                         const aclTensor* xActiveMaskOptional,
                                                         const aclTensor* expertScalesOptional,
                                                         const aclTensor* elasticInfoOptional,
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
                                                         const char* commAlg,
                                                         int64_t zeroExpertNum,
                                                         int64_t copyExpertNum,
                                                         int64_t constExpertNum,
                                                         aclTensor* expandXOut,
                                                         aclTensor* dynamicScalesOut,
                                                         aclTensor* assistInfoForCombineOut,
                                                         aclTensor* expertTokenNumsOut,
                                                         aclTensor* epRecvCountsOut,
                                                         aclTensor* tpRecvCountsOut,
                                                         aclTensor* expandScalesOut,
                                                         uint64_t* workspaceSize,
                                                         aclOpExecutor** executor) {
    moedist::api::DispatchV2Args args{x,
                                            expertIds,
                                            scalesOptional,
                                            xActiveMaskOptional,
                                            expertScalesOptional,
                                            elasticInfoOptional,
                                            /*performance_info=*/nullptr,
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
                                            commAlg,
                                            zeroExpertNum,
                                            copyExpertNum,
                                            constExpertNum,
                                            expandXOut,
                                            dynamicScalesOut,
                                            assistInfoForCombineOut,
                                            expertTokenNumsOut,
                                            epRecvCountsOut,
                                            tpRecvCountsOut,
                                            expandScalesOut};
    args.op_version = 3;
    return moedist::api::dispatch_phase_one(
        "aclnnMoeDistributeDispatchV3GetWorkspaceSize", args, workspaceSize, executor);
}

aclnnStatus aclnnMoeDistributeDispatchV2GetWorkspaceSize(const aclTensor* x,
                                                         const aclTensor* expertIds,
                                                         const aclTensor* scalesOptional,
                                                         const aclTensor* xActiveMaskOptional,
                                                         const aclTensor* expertScalesOptional,
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
                                                         const char* commAlg,
                                                         aclTensor* expandXOut,
                                                         aclTensor* dynamicScalesOut,
                                                         aclTensor* assistInfoForCombineOut,
                                                         aclTensor* expertTokenNumsOut,
                                                         aclTensor* epRecvCountsOut,
                                                         aclTensor* tpRecvCountsOut,
                                                         aclTensor* expandScalesOut,
                                                         uint64_t* workspaceSize,
                                                         aclOpExecutor** executor) {
    moedist::api::DispatchV2Args args{x,
                                            expertIds,
                                            scalesOptional,
                                            xActiveMaskOptional,
                                            expertScalesOptional,
                                            /*elastic_info=*/nullptr,
                                            /*performance_info=*/nullptr,
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
                                            commAlg,
                                            /*zero_expert_num=*/0,
                                            /*copy_expert_num=*/0,
                                            /*const_expert_num=*/0,
                                            expandXOut,
                                            dynamicScalesOut,
                                            assistInfoForCombineOut,
                                            expertTokenNumsOut,
                                            epRecvCountsOut,
                                            tpRecvCountsOut,
                                            expandScalesOut};
    args.op_version = 2;
    return moedist::api::dispatch_phase_one(
        "aclnnMoeDistributeDispatchV2GetWorkspaceSize", args, workspaceSize, executor);
}

aclnnStatus aclnnMoeDistributeDispatchV2(void* workspace,
                                         uint64_t workspaceSize,
                                         aclOpExecutor* executor,
                                         aclrtStream stream) {
    (void)workspace;
    (void)workspaceSize;
    return moedist::api::run_executor<moedist::core::DispatchOp>(
        executor, stream, "aclnnMoeDistributeDispatchV2");
}

aclnnStatus aclnnMoeDistributeDispatchV3(void* workspace,
                                         uint64_t workspaceSize,
                                         aclOpExecutor* executor,
                                         aclrtStream stream) {
    (void)workspace;
    (void)workspaceSize;
    return moedist::api::run_executor<moedist::core::DispatchOp>(
        executor, stream, "aclnnMoeDistributeDispatchV3");
}

aclnnStatus aclnnMoeDistributeDispatchV4(void* workspace,
                                         uint64_t workspaceSize,
                                         aclOpExecutor* executor,
                                         aclrtStream stream) {
    (void)workspace;
    (void)workspaceSize;
    return moedist::api::run_executor<moedist::core::DispatchOp>(
        executor, stream, "aclnnMoeDistributeDispatchV4");
}

}  // extern "C"
