// aclnnMoeDistributeDispatch: the two-phase C API over core::prepare_dispatch / run_dispatch.
#include <exception>
#include <new>

#include "aclnnop/aclnn_moe_distribute_dispatch.h"
#include "api/facade.hpp"

namespace moedist::api {
namespace {

Status prepare(const aclTensor* x,
               const aclTensor* expertIds,
               const aclTensor* scales,
               const aclTensor* expertScales,
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
               core::DispatchOp* op) {
    MoeConfig config;
    config.ep_world_size = epWorldSize;
    config.ep_rank_id = epRankId;
    config.moe_expert_num = moeExpertNum;
    config.tp_world_size = tpWorldSize;
    config.tp_rank_id = tpRankId;
    config.expert_shard_type = expertShardType;
    config.shared_expert_num = sharedExpertNum;
    config.shared_expert_rank_num = sharedExpertRankNum;
    config.quant_mode = quantMode;
    config.global_bs = globalBs;
    config.expert_token_nums_type = expertTokenNumsType;

    DispatchInputs in;
    DispatchOutputs out;
    // Required tensors (161001), then dtypes moedist knows (161002). xActiveMask is reserved.
    if (Status s = view_of(x, "x", &in.x); !s.ok()) return s;
    if (Status s = view_of(expertIds, "expertIds", &in.expert_ids); !s.ok()) return s;
    if (Status s = view_of(expandX, "expandX", &out.expand_x); !s.ok()) return s;
    if (Status s = view_of(expandIdx, "expandIdx", &out.expand_idx); !s.ok()) return s;
    if (Status s = view_of(expertTokenNums, "expertTokenNums", &out.expert_token_nums); !s.ok())
        return s;
    if (Status s = view_of(epRecvCounts, "epRecvCounts", &out.ep_recv_counts); !s.ok()) return s;
    if (Status s = optional_view_of(scales, "scales", &in.scales); !s.ok()) return s;
    if (Status s = optional_view_of(expertScales, "expertScales", &in.expert_scales); !s.ok())
        return s;
    if (Status s = optional_view_of(expandScales, "expandScales", &out.expand_scales); !s.ok())
        return s;
    // dynamicScales only when the mode makes scales; tpRecvCounts only when T == 2.
    const bool x_pre_quantized = dtype_size(in.x.dtype) == 1;  // fp8/hifloat8 x carries scales
    if (quantMode >= 2 || (quantMode == 0 && x_pre_quantized)) {
        if (Status s = optional_view_of(dynamicScales, "dynamicScales", &out.dynamic_scales);
            !s.ok())
            return s;
    }
    if (config.tp_size() == 2) {
        if (Status s = optional_view_of(tpRecvCounts, "tpRecvCounts", &out.tp_recv_counts); !s.ok())
            return s;
    }
    if (Status s = config.validate(); !s.ok()) return s;

    Communicator ep;
    std::optional<Communicator> tp;
    if (Status s = find_groups(config, groupEp, groupTp, &ep, &tp); !s.ok()) return s;
    return core::prepare_dispatch(
        config, ep, tp, in, out, call_extras(groupTp, x_active_mask_given), op);
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
    // xActiveMask is reserved: its content is ignored; the A3 profile requires it null.
    return api::phase_one<core::DispatchOp>("aclnnMoeDistributeDispatchGetWorkspaceSize",
                                            workspaceSize,
                                            executor,
                                            [&](core::DispatchOp* op) {
                                                return api::prepare(x,
                                                                    expertIds,
                                                                    scales,
                                                                    expertScales,
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
                                                                    quantMode,
                                                                    globalBs,
                                                                    expertTokenNumsType,
                                                                    expandX,
                                                                    dynamicScales,
                                                                    expandIdx,
                                                                    expertTokenNums,
                                                                    epRecvCounts,
                                                                    tpRecvCounts,
                                                                    expandScales,
                                                                    op);
                                            });
}

aclnnStatus aclnnMoeDistributeDispatch(void* workspace,
                                       uint64_t workspaceSize,
                                       aclOpExecutor* executor,
                                       aclrtStream stream) {
    (void)workspace;
    (void)workspaceSize;
    return moedist::api::run_executor(executor, stream, "aclnnMoeDistributeDispatch");
}

}  // extern "C"
