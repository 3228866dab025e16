// aclnnMoeDistributeCombineV2 / V3 / V4 and aclnnMoeDistributeCombineAddRmsNorm / V2: the
// two-phase C API of the V2 family's combine (docs/contract.md §10) over core::prepare_combine /
// run_combine. One argument set (the union of CombineV4's and AddRmsNormV2's) and one first phase
// for the five: each entry point gives what it lacks as null / 0.
#include "aclnnop/aclnn_moe_distribute_combine_add_rms_norm.h"
#include "aclnnop/aclnn_moe_distribute_combine_add_rms_norm_v2.h"
#include "aclnnop/aclnn_moe_distribute_combine_v2.h"
#include "aclnnop/aclnn_moe_distribute_combine_v3.h"
#include "aclnnop/aclnn_moe_distribute_combine_v4.h"
#include "api/facade.hpp"

namespace moedist::api {
namespace {

// The arguments moedist reads, in Ascend's order. activationScale, weightScale, groupList,
// expandScales and groupListType are reserved: ignored whatever they hold, so the entry points do
// not pass them on.
struct CombineV2Args {
    const aclTensor* expand_x;
    const aclTensor* expert_ids;
    const aclTensor* assist_info;  // assistInfoForCombine: required
    const aclTensor* ep_send_counts;
    const aclTensor* expert_scales;  // required; empty (a dim 0): unweighted
    const aclTensor* residual_x;     // AddRmsNorm: required
    const aclTensor* gamma;          // AddRmsNorm: required
    const aclTensor* tp_send_counts;
    const aclTensor* x_active_mask;  // honoured (docs/contract.md §10.2)
    const aclTensor* shared_expert_x;
    const aclTensor* elastic_info;  // must be null (561002)
    const aclTensor* ori_x;
    const aclTensor* const_alpha1;
    const aclTensor* const_alpha2;
    const aclTensor* const_v;
    const aclTensor* performance_info;  // CombineV4: int64 (W,), added to
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
    int64_t out_dtype;  // must be 0
    int64_t comm_quant_mode;
    const char* comm_alg;  // null: ""
    float norm_eps;        // AddRmsNorm
    int64_t zero_expert_num;
    int64_t copy_expert_num;
    int64_t const_expert_num;
    aclTensor* y_out;     // AddRmsNorm
    aclTensor* rstd_out;  // AddRmsNorm
    aclTensor* x_out;
    bool add_rms_norm;
    int op_version = 4;           // which entry point (the A3 profile's V4 rules)
    bool reserved_given = false;  // activationScale, weightScale or groupList given (A3: refused)
};

core::CallExtras extras_of(const CombineV2Args& a) {
    core::CallExtras extras = call_extras(a.group_tp, a.x_active_mask != nullptr);
    extras.op_version = a.op_version;
    extras.reserved_given = a.reserved_given;
    return extras;
}

// An empty expertScales of any shape is read as a (0, 0) one: the unweighted sum.
TensorView unweighted_if_empty(const TensorView& scales) {
    if (scales.numel() != 0 || scales.ndim == 2) return scales;
    TensorView v = scales;
    v.ndim = 2;
    v.shape = {0, 0, 0, 0};
    v.strides = {0, 1, 0, 0};
    return v;
}

Status required_input(const aclTensor* tensor,
                      const char* name,
                      std::optional<TensorView>* out,
                      Bindings* bindings) {
    TensorView view;
    if (Status s = view_of(tensor, name, &view, bindings); !s.ok()) return s;
    *out = view;
    return Status::Ok();
}

Status prepare_checked(const CombineV2Args& a, core::CombineOp* op, Bindings* bindings) {
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
    config.global_bs = a.global_bs;
    config.comm_quant_mode = a.comm_quant_mode;
    config.zero_expert_num = a.zero_expert_num;
    config.copy_expert_num = a.copy_expert_num;
    config.const_expert_num = a.const_expert_num;
    config.comm_alg = comm_alg_of(a.comm_alg);

    CombineInputs in;  // no expandIdx in V2: in.expand_idx stays an empty view
    TensorView x_out;
    // Required tensors (161001), then dtypes moedist knows (161002), then their blocks.
    if (Status s = view_of(a.expand_x, "expandX", &in.expand_x, bindings); !s.ok()) return s;
    if (Status s = view_of(a.expert_ids, "expertIds", &in.expert_ids, bindings); !s.ok()) return s;
    if (Status s = required_input(a.assist_info, "assistInfoForCombine", &in.assist_info, bindings);
        !s.ok())
        return s;
    if (Status s = view_of(a.ep_send_counts, "epSendCounts", &in.ep_send_counts, bindings); !s.ok())
        return s;
    if (Status s = view_of(a.expert_scales, "expertScales", &in.expert_scales, bindings); !s.ok())
        return s;
    in.expert_scales = unweighted_if_empty(in.expert_scales);
    if (a.add_rms_norm) {
        if (Status s = required_input(a.residual_x, "residualX", &in.residual_x, bindings); !s.ok())
            return s;
        if (Status s = required_input(a.gamma, "gamma", &in.gamma, bindings); !s.ok()) return s;
        if (Status s = required_input(a.y_out, "yOut", &in.y_out, bindings); !s.ok()) return s;
        if (Status s = required_input(a.rstd_out, "rstdOut", &in.rstd_out, bindings); !s.ok())
            return s;
        if (Status s = view_of(a.x_out, "xOut", &x_out, bindings); !s.ok()) return s;
        in.norm_eps = a.norm_eps;
    } else {
        if (Status s = view_of(a.x_out, "x", &x_out, bindings); !s.ok()) return s;
    }
    if (config.tp_size() == 2) {
        if (Status s =
                optional_view_of(a.tp_send_counts, "tpSendCounts", &in.tp_send_counts, bindings);
            !s.ok())
            return s;
    }
    struct Optional {
        const aclTensor* tensor;
        const char* name;
        std::optional<TensorView>* out;
    };
    for (const Optional& o :
         {Optional{a.x_active_mask, "xActiveMask", &in.x_active_mask},
          Optional{a.shared_expert_x, "sharedExpertX", &in.shared_expert_x},
          Optional{a.ori_x, "oriX", &in.ori_x},
          Optional{a.const_alpha1, "constExpertAlpha1", &in.const_alpha1},
          Optional{a.const_alpha2, "constExpertAlpha2", &in.const_alpha2},
          Optional{a.const_v, "constExpertV", &in.const_v},
          Optional{a.performance_info, "performanceInfo", &in.performance_info}}) {
        if (Status s = optional_view_of(o.tensor, o.name, o.out, bindings); !s.ok()) return s;
    }
    if (Status s = refuse_elastic_info(a.elastic_info); !s.ok()) return s;
    if (a.out_dtype != 0) {
        return {Code::kInnerTiling, "outDtype must be 0, got " + std::to_string(a.out_dtype)};
    }
    if (Status s = config.validate(); !s.ok()) return s;

    Communicator ep;
    std::optional<Communicator> tp;
    if (Status s = find_groups(config, a.group_ep, a.group_tp, &ep, &tp); !s.ok()) return s;
    // The mask is an input here (in.x_active_mask), not V1's reserved one.
    return core::prepare_combine(config, ep, tp, in, x_out, extras_of(a), op);
}

// A first phase that fails here fails the peers' matching call too, at once (facade.hpp).
Status prepare(const CombineV2Args& a, core::CombineOp* op, Bindings* bindings) {
    return prepare_or_abort(a, op, bindings, prepare_checked);
}

aclnnStatus combine_phase_one(const char* op_name,
                              const CombineV2Args& args,
                              uint64_t* workspace_size,
                              aclOpExecutor** executor) {
    return phase_one<core::CombineOp>(
        op_name, workspace_size, executor, [&](core::CombineOp* op, Bindings* bindings) {
            return prepare(args, op, bindings);
        });
}

// The reserved inputs every entry point takes and ignores.
void ignore_reserved(const aclTensor* activation_scale,
                     const aclTensor* weight_scale,
                     const aclTensor* group_list,
                     const aclTensor* expand_scales,
                     int64_t group_list_type) {
    (void)activation_scale;
    (void)weight_scale;
    (void)group_list;
    (void)expand_scales;
    (void)group_list_type;
}

}  // namespace
}  // namespace moedist::api

extern "C" {

aclnnStatus aclnnMoeDistributeCombineV4GetWorkspaceSize(const aclTensor* expandX,
                                                        const aclTensor* expertIds,
                                                        const aclTensor* assistInfoForCombine,
                                                        const aclTensor* epSendCounts,
                                                        const aclTensor* expertScales,
                                                        const aclTensor* tpSendCountsOptional,
                                                        const aclTensor* xActiveMaskOptional,
                                                        const aclTensor* activationScaleOptional,
                                                        const aclTensor* weightScaleOptional,
                                                        const aclTensor* groupListOptional,
                                                        const aclTensor* expandScalesOptional,
                                                        const aclTensor* sharedExpertXOptional,
                                                        const aclTensor* elasticInfoOptional,
                                                        const aclTensor* oriXOptional,
                                                        const aclTensor* constExpertAlpha1Optional,
                                                        const aclTensor* constExpertAlpha2Optional,
                                                        const aclTensor* constExpertVOptional,
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
                                                        int64_t globalBs,
                                                        int64_t outDtype,
                                                        int64_t commQuantMode,
                                                        int64_t groupListType,
                                                        const char* commAlg,
                                                        int64_t zeroExpertNum,
                                                        int64_t copyExpertNum,
                                                        int64_t constExpertNum,
                                                        aclTensor* xOut,
                                                        uint64_t* workspaceSize,
                                                        aclOpExecutor** executor) {
    using namespace moedist;
    api::ignore_reserved(activationScaleOptional,
                         weightScaleOptional,
                         groupListOptional,
                         expandScalesOptional,
                         groupListType);
    api::CombineV2Args args{expandX,
                                  expertIds,
                                  assistInfoForCombine,
                                  epSendCounts,
                                  expertScales,
                                  /*residual_x=*/nullptr,
                                  /*gamma=*/nullptr,
                                  tpSendCountsOptional,
                                  xActiveMaskOptional,
                                  sharedExpertXOptional,
                                  elasticInfoOptional,
                                  oriXOptional,
                                  constExpertAlpha1Optional,
                                  constExpertAlpha2Optional,
                                  constExpertVOptional,
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
                                  globalBs,
                                  outDtype,
                                  commQuantMode,
                                  commAlg,
                                  /*norm_eps=*/0.0f,
                                  zeroExpertNum,
                                  copyExpertNum,
                                  constExpertNum,
                                  /*y_out=*/nullptr,
                                  /*rstd_out=*/nullptr,
                                  xOut,
                                  /*add_rms_norm=*/false};
    args.op_version = 4;
    args.reserved_given = activationScaleOptional != nullptr || weightScaleOptional != nullptr ||
                          groupListOptional != nullptr;
    return api::combine_phase_one(
        "aclnnMoeDistributeCombineV4GetWorkspaceSize", args, workspaceSize, executor);
}

aclnnStatus aclnnMoeDistributeCombineV3GetWorkspaceSize(const aclTensor* expandX,
                                                        const aclTensor* expertIds,
                                                        const aclTensor* assistInfoForCombine,
                                                        const aclTensor* epSendCounts,
                                                        const aclTensor* expertScales,
                                                        const aclTensor* tpSendCountsOptional,
                                                        const aclTensor* xActiveMaskOptional,
                                                        const aclTensor* activationScaleOptional,
                                                        const aclTensor* weightScaleOptional,
                                                        const aclTensor* groupListOptional,
                                                        const aclTensor* expandScalesOptional,
                                                        const aclTensor* sharedExpertXOptional,
                                                        const aclTensor* elasticInfoOptional,
                                                        const aclTensor* oriXOptional,
                                                        const aclTensor* constExpertAlpha1Optional,
                                                        const aclTensor* constExpertAlpha2Optional,
                                                        const aclTensor* constExpertVOptional,
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
                                                        const char* commAlg,
                                                        int64_t zeroExpertNum,
                                                        int64_t copyExpertNum,
                                                        int64_t constExpertNum,
                                                        aclTensor* xOut,
                                                        uint64_t* workspaceSize,
                                                        aclOpExecutor** executor) {
    using namespace moedist;
    api::ignore_reserved(activationScaleOptional,
                         weightScaleOptional,
                         groupListOptional,
                         expandScalesOptional,
                         groupListType);
    api::CombineV2Args args{expandX,
                                  expertIds,
                                  assistInfoForCombine,
                                  epSendCounts,
                                  expertScales,
                                  /*residual_x=*/nullptr,
                                  /*gamma=*/nullptr,
                                  tpSendCountsOptional,
                                  xActiveMaskOptional,
                                  sharedExpertXOptional,
                                  elasticInfoOptional,
                                  oriXOptional,
                                  constExpertAlpha1Optional,
                                  constExpertAlpha2Optional,
                                  constExpertVOptional,
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
                                  globalBs,
                                  outDtype,
                                  commQuantMode,
                                  commAlg,
                                  /*norm_eps=*/0.0f,
                                  zeroExpertNum,
                                  copyExpertNum,
                                  constExpertNum,
                                  /*y_out=*/nullptr,
                                  /*rstd_out=*/nullptr,
                                  xOut,
                                  /*add_rms_norm=*/false};
    args.op_version = 3;
    args.reserved_given = activationScaleOptional != nullptr || weightScaleOptional != nullptr ||
                          groupListOptional != nullptr;
    return api::combine_phase_one(
        "aclnnMoeDistributeCombineV3GetWorkspaceSize", args, workspaceSize, executor);
}

aclnnStatus aclnnMoeDistributeCombineV2GetWorkspaceSize(const aclTensor* expandX,
                                                        const aclTensor* expertIds,
                                                        const aclTensor* assistInfoForCombine,
                                                        const aclTensor* epSendCounts,
                                                        const aclTensor* expertScales,
                                                        const aclTensor* tpSendCountsOptional,
                                                        const aclTensor* xActiveMaskOptional,
                                                        const aclTensor* activationScaleOptional,
                                                        const aclTensor* weightScaleOptional,
                                                        const aclTensor* groupListOptional,
                                                        const aclTensor* expandScalesOptional,
                                                        const aclTensor* sharedExpertXOptional,
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
                                                        const char* commAlg,
                                                        aclTensor* xOut,
                                                        uint64_t* workspaceSize,
                                                        aclOpExecutor** executor) {
    using namespace moedist;
    api::ignore_reserved(activationScaleOptional,
                         weightScaleOptional,
                         groupListOptional,
                         expandScalesOptional,
                         groupListType);
    api::CombineV2Args args{expandX,
                                  expertIds,
                                  assistInfoForCombine,
                                  epSendCounts,
                                  expertScales,
                                  /*residual_x=*/nullptr,
                                  /*gamma=*/nullptr,
                                  tpSendCountsOptional,
                                  xActiveMaskOptional,
                                  sharedExpertXOptional,
                                  /*elastic_info=*/nullptr,
                                  /*ori_x=*/nullptr,
                                  /*const_alpha1=*/nullptr,
                                  /*const_alpha2=*/nullptr,
                                  /*const_v=*/nullptr,
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
                                  globalBs,
                                  outDtype,
                                  commQuantMode,
                                  commAlg,
                                  /*norm_eps=*/0.0f,
                                  /*zero_expert_num=*/0,
                                  /*copy_expert_num=*/0,
                                  /*const_expert_num=*/0,
                                  /*y_out=*/nullptr,
                                  /*rstd_out=*/nullptr,
                                  xOut,
                                  /*add_rms_norm=*/false};
    args.op_version = 2;
    args.reserved_given = activationScaleOptional != nullptr || weightScaleOptional != nullptr ||
                          groupListOptional != nullptr;
    return api::combine_phase_one(
        "aclnnMoeDistributeCombineV2GetWorkspaceSize", args, workspaceSize, executor);
}

aclnnStatus aclnnMoeDistributeCombineAddRmsNormV2GetWorkspaceSize(
    const aclTensor* expandX,
    const aclTensor* expertIds,
    const aclTensor* assistInfoForCombine,
    const aclTensor* epSendCounts,
    const aclTensor* expertScales,
    const aclTensor* residualX,
    const aclTensor* gamma,
    const aclTensor* tpSendCountsOptional,
    const aclTensor* xActiveMaskOptional,
    const aclTensor* activationScaleOptional,
    const aclTensor* weightScaleOptional,
    const aclTensor* groupListOptional,
    const aclTensor* expandScalesOptional,
    const aclTensor* sharedExpertXOptional,
    const aclTensor* elasticInfoOptional,
    const aclTensor* oriXOptional,
    const aclTensor* constExpertAlpha1Optional,
    const aclTensor* constExpertAlpha2Optional,
    const aclTensor* constExpertVOptional,
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
    const char* commAlg,
    float normEps,
    int64_t zeroExpertNum,
    int64_t copyExpertNum,
    int64_t constExpertNum,
    aclTensor* yOut,
    aclTensor* rstdOut,
    aclTensor* xOut,
    uint64_t* workspaceSize,
    aclOpExecutor** executor) {
    using namespace moedist;
    api::ignore_reserved(activationScaleOptional,
                         weightScaleOptional,
                         groupListOptional,
                         expandScalesOptional,
                         groupListType);
    api::CombineV2Args args{expandX,
                                  expertIds,
                                  assistInfoForCombine,
                                  epSendCounts,
                                  expertScales,
                                  residualX,
                                  gamma,
                                  tpSendCountsOptional,
                                  xActiveMaskOptional,
                                  sharedExpertXOptional,
                                  elasticInfoOptional,
                                  oriXOptional,
                                  constExpertAlpha1Optional,
                                  constExpertAlpha2Optional,
                                  constExpertVOptional,
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
                                  globalBs,
                                  outDtype,
                                  commQuantMode,
                                  commAlg,
                                  normEps,
                                  zeroExpertNum,
                                  copyExpertNum,
                                  constExpertNum,
                                  yOut,
                                  rstdOut,
                                  xOut,
                                  /*add_rms_norm=*/true};
    args.op_version = 3;
    args.reserved_given = activationScaleOptional != nullptr || weightScaleOptional != nullptr ||
                          groupListOptional != nullptr;
    return api::combine_phase_one(
        "aclnnMoeDistributeCombineAddRmsNormV2GetWorkspaceSize", args, workspaceSize, executor);
}

aclnnStatus aclnnMoeDistributeCombineAddRmsNormGetWorkspaceSize(
    const aclTensor* expandX,
    const aclTensor* expertIds,
    const aclTensor* assistInfoForCombine,
    const aclTensor* epSendCounts,
    const aclTensor* expertScales,
    const aclTensor* residualX,
    const aclTensor* gamma,
    const aclTensor* tpSendCountsOptional,
    const aclTensor* xActiveMaskOptional,
    const aclTensor* activationScaleOptional,
    const aclTensor* weightScaleOptional,
    const aclTensor* groupListOptional,
    const aclTensor* expandScalesOptional,
    const aclTensor* sharedExpertXOptional,
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
    const char* commAlg,
    float normEps,
    aclTensor* yOut,
    aclTensor* rstdOut,
    aclTensor* xOut,
    uint64_t* workspaceSize,
    aclOpExecutor** executor) {
    using namespace moedist;
    api::ignore_reserved(activationScaleOptional,
                         weightScaleOptional,
                         groupListOptional,
                         expandScalesOptional,
                         groupListType);
    api::CombineV2Args args{expandX,
                                  expertIds,
                                  assistInfoForCombine,
                                  epSendCounts,
                                  expertScales,
                                  residualX,
                                  gamma,
                                  tpSendCountsOptional,
                                  xActiveMaskOptional,
                                  sharedExpertXOptional,
                                  /*elastic_info=*/nullptr,
                                  /*ori_x=*/nullptr,
                                  /*const_alpha1=*/nullptr,
                                  /*const_alpha2=*/nullptr,
                                  /*const_v=*/nullptr,
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
                                  globalBs,
                                  outDtype,
                                  commQuantMode,
                                  commAlg,
                                  normEps,
                                  /*zero_expert_num=*/0,
                                  /*copy_expert_num=*/0,
                                  /*const_expert_num=*/0,
                                  yOut,
                                  rstdOut,
                                  xOut,
                                  /*add_rms_norm=*/true};
    args.op_version = 2;
    args.reserved_given = activationScaleOptional != nullptr || weightScaleOptional != nullptr ||
                          groupListOptional != nullptr;
    return api::combine_phase_one(
        "aclnnMoeDistributeCombineAddRmsNormGetWorkspaceSize", args, workspaceSize, executor);
}

aclnnStatus aclnnMoeDistributeCombineV2(void* workspace,
                                        uint64_t workspaceSize,
                                        aclOpExecutor* executor,
                                        aclrtStream stream) {
    (void)workspace;
    (void)workspaceSize;
    return moedist::api::run_executor<moedist::core::CombineOp>(
        executor, stream, "aclnnMoeDistributeCombineV2");
}

aclnnStatus aclnnMoeDistributeCombineV3(void* workspace,
                                        uint64_t workspaceSize,
                                        aclOpExecutor* executor,
                                        aclrtStream stream) {
    (void)workspace;
    (void)workspaceSize;
    return moedist::api::run_executor<moedist::core::CombineOp>(
        executor, stream, "aclnnMoeDistributeCombineV3");
}

aclnnStatus aclnnMoeDistributeCombineV4(void* workspace,
                                        uint64_t workspaceSize,
                                        aclOpExecutor* executor,
                                        aclrtStream stream) {
    (void)workspace;
    (void)workspaceSize;
    return moedist::api::run_executor<moedist::core::CombineOp>(
        executor, stream, "aclnnMoeDistributeCombineV4");
}

aclnnStatus aclnnMoeDistributeCombineAddRmsNorm(void* workspace,
                                                uint64_t workspaceSize,
                                                aclOpExecutor* executor,
                                                aclrtStream stream) {
    (void)workspace;
    (void)workspaceSize;
    return moedist::api::run_executor<moedist::core::CombineOp>(
        executor, stream, "aclnnMoeDistributeCombineAddRmsNorm");
}

aclnnStatus aclnnMoeDistributeCombineAddRmsNormV2(void* workspace,
                                                  uint64_t workspaceSize,
                                                  aclOpExecutor* executor,
                                                  aclrtStream stream) {
    (void)workspace;
    (void)workspaceSize;
    return moedist::api::run_executor<moedist::core::CombineOp>(
        executor, stream, "aclnnMoeDistributeCombineAddRmsNormV2");
}

}  // extern "C"
