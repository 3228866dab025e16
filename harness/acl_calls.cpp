#include "harness/acl_calls.hpp"

#include <algorithm>
#include <string>

#include "acl/acl.h"
#include "aclnnop/aclnn_moe_distribute_combine.h"
#include "aclnnop/aclnn_moe_distribute_combine_add_rms_norm.h"
#include "aclnnop/aclnn_moe_distribute_combine_add_rms_norm_v2.h"
#include "aclnnop/aclnn_moe_distribute_combine_v2.h"
#include "aclnnop/aclnn_moe_distribute_combine_v3.h"
#include "aclnnop/aclnn_moe_distribute_combine_v4.h"
#include "aclnnop/aclnn_moe_distribute_dispatch.h"
#include "aclnnop/aclnn_moe_distribute_dispatch_v2.h"
#include "aclnnop/aclnn_moe_distribute_dispatch_v3.h"
#include "aclnnop/aclnn_moe_distribute_dispatch_v4.h"

namespace moedist::harness {

AclTensors::~AclTensors() {
    for (aclTensor* t : owned) aclDestroyTensor(t);
}

aclTensor* AclTensors::make(const TensorView& v,
                            const void* storage,
                            int64_t offset,
                            int64_t storage_elems) {
    aclDataType dtype = ACL_FLOAT;
    switch (v.dtype) {
        case DType::kBFloat16:
            dtype = ACL_BF16;
            break;
        case DType::kFloat16:
            dtype = ACL_FLOAT16;
            break;
        case DType::kInt8:
            dtype = ACL_INT8;
            break;
        case DType::kUInt8:
            dtype = ACL_UINT8;
            break;
        case DType::kFp8E4M3:
            dtype = ACL_FLOAT8_E4M3FN;
            break;
        case DType::kFp8E5M2:
            dtype = ACL_FLOAT8_E5M2;
            break;
        case DType::kHiFloat8:
            dtype = ACL_HIFLOAT8;
            break;
        case DType::kE8M0:
            dtype = ACL_FLOAT8_E8M0;
            break;
        case DType::kInt32:
            dtype = ACL_INT32;
            break;
        case DType::kInt64:
            dtype = ACL_INT64;
            break;
        case DType::kBool:
            dtype = ACL_BOOL;
            break;
        default:
            dtype = ACL_FLOAT;
            break;
    }
    const int64_t storage_dims[1] = {storage_elems};
    aclTensor* t = aclCreateTensor(v.shape.data(),
                                   static_cast<uint64_t>(v.ndim),
                                   dtype,
                                   v.strides.data(),
                                   offset,
                                   ACL_FORMAT_ND,
                                   storage_dims,
                                   1,
                                   const_cast<void*>(storage));
    owned.push_back(t);
    return t;
}

namespace {
Status from_acl(aclnnStatus code) {
    if (code == 0) return Status::Ok();
    const char* message = aclGetRecentErrMsg();
    return {static_cast<Code>(code), message != nullptr ? message : "(no message)"};
}

int specials(const JobSpec& spec) {
    return spec.zero_experts + spec.copy_experts + spec.const_experts;
}

// The least version that carries the spec: special experts need V3, performanceInfo V4.
int least_version(const JobSpec& spec) {
    if (spec.performance_info) return 4;
    return specials(spec) > 0 ? 3 : 2;
}

// commAlg: every value the generic profile accepts gives the same results (null means "").
const char* comm_alg(const JobSpec& spec) {
    static const char* const kAlgs[] = {
        nullptr, "", "fullmesh_v1", "fullmesh_v2", "hierarchy", "fullmesh", "0"};
    return kAlgs[spec.seed % 7];
}

Status acl_dispatch_v2(const JobSpec& spec,
                       const Layout& lay,
                       const AclTensors& t,
                       const AclGroups& groups) {
    const int ep = groups.ep_rank, tp = groups.tp_rank;
    const char* ep_name = groups.ep_name.c_str();
    const char* tp_name = groups.tp_name.c_str();
    const int64_t tp_world = lay.T == 2 ? 2 : 0;
    const int64_t shared_num = lay.S > 0 ? spec.shared_expert_num : 1;
    aclTensor* dynamic_scales = t.dynamic_scales != nullptr ? t.dynamic_scales : t.junk_f32;
    aclTensor* tp_counts = t.tp_recv_counts != nullptr ? t.tp_recv_counts : t.junk_i32;
    uint64_t workspace = 0;
    aclOpExecutor* executor = nullptr;
    aclnnStatus ret = 0;
    switch (acl_dispatch_version(spec)) {
        case 2:
            ret = aclnnMoeDistributeDispatchV2GetWorkspaceSize(t.x,
                                                               t.expert_ids,
                                                               t.scales,
                                                               t.mask,
                                                               t.expert_scales,
                                                               ep_name,
                                                               lay.W,
                                                               ep,
                                                               lay.E,
                                                               tp_name,
                                                               tp_world,
                                                               tp,
                                                               0,
                                                               shared_num,
                                                               lay.S,
                                                               spec.quant_mode,
                                                               lay.global_bs,
                                                               spec.expert_token_nums_type,
                                                               comm_alg(spec),
                                                               t.expand_x,
                                                               dynamic_scales,
                                                               t.assist,
                                                               t.expert_token_nums,
                                                               t.ep_recv_counts,
                                                               tp_counts,
                                                               t.expand_scales,
                                                               &workspace,
                                                               &executor);
            if (ret != 0) return from_acl(ret);
            return from_acl(aclnnMoeDistributeDispatchV2(nullptr, workspace, executor, nullptr));
        case 3:
            ret = aclnnMoeDistributeDispatchV3GetWorkspaceSize(t.x,
                                                               t.expert_ids,
                                                               t.scales,
                                                               t.mask,
                                                               t.expert_scales,
                                                               /*elasticInfo=*/nullptr,
                                                               ep_name,
                                                               lay.W,
                                                               ep,
                                                               lay.E,
                                                               tp_name,
                                                               tp_world,
                                                               tp,
                                                               0,
                                                               shared_num,
                                                               lay.S,
                                                               spec.quant_mode,
                                                               lay.global_bs,
                                                               spec.expert_token_nums_type,
                                                               comm_alg(spec),
                                                               spec.zero_experts,
                                                               spec.copy_experts,
                                                               spec.const_experts,
                                                               t.expand_x,
                                                               dynamic_scales,
                                                               t.assist,
                                                               t.expert_token_nums,
                                                               t.ep_recv_counts,
                                                               tp_counts,
                                                               t.expand_scales,
                                                               &workspace,
                                                               &executor);
            if (ret != 0) return from_acl(ret);
            return from_acl(aclnnMoeDistributeDispatchV3(nullptr, workspace, executor, nullptr));
        default:
            ret = aclnnMoeDistributeDispatchV4GetWorkspaceSize(t.x,
                                                               t.expert_ids,
                                                               t.scales,
                                                               t.mask,
                                                               t.expert_scales,
                                                               /*elasticInfo=*/nullptr,
                                                               t.performance,
                                                               ep_name,
                                                               lay.W,
                                                               ep,
                                                               lay.E,
                                                               tp_name,
                                                               tp_world,
                                                               tp,
                                                               0,
                                                               shared_num,
                                                               lay.S,
                                                               spec.quant_mode,
                                                               lay.global_bs,
                                                               spec.expert_token_nums_type,
                                                               comm_alg(spec),
                                                               spec.zero_experts,
                                                               spec.copy_experts,
                                                               spec.const_experts,
                                                               t.expand_x,
                                                               dynamic_scales,
                                                               t.assist,
                                                               t.expert_token_nums,
                                                               t.ep_recv_counts,
                                                               tp_counts,
                                                               t.expand_scales,
                                                               &workspace,
                                                               &executor);
            if (ret != 0) return from_acl(ret);
            return from_acl(aclnnMoeDistributeDispatchV4(nullptr, workspace, executor, nullptr));
    }
}

Status acl_combine_v2(const JobSpec& spec,
                      const Layout& lay,
                      const AclTensors& t,
                      const AclGroups& groups) {
    const int ep = groups.ep_rank, tp = groups.tp_rank;
    const char* ep_name = groups.ep_name.c_str();
    const char* tp_name = groups.tp_name.c_str();
    const int64_t tp_world = lay.T == 2 ? 2 : 0;
    const int64_t shared_num = lay.S > 0 ? spec.shared_expert_num : 1;
    const int64_t group_list_type = (ep + tp) % 2;  // reserved: any value
    const std::string entry = acl_combine_entry(spec);
    uint64_t workspace = 0;
    aclOpExecutor* executor = nullptr;
    aclnnStatus ret = 0;
    if (entry == "aclnnMoeDistributeCombineAddRmsNorm") {
        ret = aclnnMoeDistributeCombineAddRmsNormGetWorkspaceSize(t.expert_out,
                                                                  t.expert_ids,
                                                                  t.assist,
                                                                  t.ep_recv_counts,
                                                                  t.combine_scales,
                                                                  t.residual,
                                                                  t.gamma,
                                                                  t.tp_recv_counts,
                                                                  t.mask,
                                                                  t.junk_f32,
                                                                  t.junk_f32,
                                                                  t.junk_i32,
                                                                  t.junk_f32,
                                                                  t.shared_x,
                                                                  ep_name,
                                                                  lay.W,
                                                                  ep,
                                                                  lay.E,
                                                                  tp_name,
                                                                  tp_world,
                                                                  tp,
                                                                  0,
                                                                  shared_num,
                                                                  lay.S,
                                                                  lay.global_bs,
                                                                  /*outDtype=*/0,
                                                                  spec.comm_quant_mode,
                                                                  group_list_type,
                                                                  comm_alg(spec),
                                                                  t.norm_eps,
                                                                  t.y_out,
                                                                  t.rstd_out,
                                                                  t.x_out,
                                                                  &workspace,
                                                                  &executor);
        if (ret != 0) return from_acl(ret);
        return from_acl(
            aclnnMoeDistributeCombineAddRmsNorm(nullptr, workspace, executor, nullptr));
    }
    if (entry == "aclnnMoeDistributeCombineAddRmsNormV2") {
        ret = aclnnMoeDistributeCombineAddRmsNormV2GetWorkspaceSize(t.expert_out,
                                                                    t.expert_ids,
                                                                    t.assist,
                                                                    t.ep_recv_counts,
                                                                    t.combine_scales,
                                                                    t.residual,
                                                                    t.gamma,
                                                                    t.tp_recv_counts,
                                                                    t.mask,
                                                                    t.junk_f32,
                                                                    t.junk_f32,
                                                                    t.junk_i32,
                                                                    t.junk_f32,
                                                                    t.shared_x,
                                                                    /*elasticInfo=*/nullptr,
                                                                    t.ori_x,
                                                                    t.alpha1,
                                                                    t.alpha2,
                                                                    t.const_v,
                                                                    ep_name,
                                                                    lay.W,
                                                                    ep,
                                                                    lay.E,
                                                                    tp_name,
                                                                    tp_world,
                                                                    tp,
                                                                    0,
                                                                    shared_num,
                                                                    lay.S,
                                                                    lay.global_bs,
                                                                    /*outDtype=*/0,
                                                                    spec.comm_quant_mode,
                                                                    group_list_type,
                                                                    comm_alg(spec),
                                                                    t.norm_eps,
                                                                    spec.zero_experts,
                                                                    spec.copy_experts,
                                                                    spec.const_experts,
                                                                    t.y_out,
                                                                    t.rstd_out,
                                                                    t.x_out,
                                                                    &workspace,
                                                                    &executor);
        if (ret != 0) return from_acl(ret);
        return from_acl(
            aclnnMoeDistributeCombineAddRmsNormV2(nullptr, workspace, executor, nullptr));
    }
    if (entry == "aclnnMoeDistributeCombineV2") {
        ret = aclnnMoeDistributeCombineV2GetWorkspaceSize(t.expert_out,
                                                          t.expert_ids,
                                                          t.assist,
                                                          t.ep_recv_counts,
                                                          t.combine_scales,
                                                          t.tp_recv_counts,
                                                          t.mask,
                                                          t.junk_f32,
                                                          t.junk_f32,
                                                          t.junk_i32,
                                                          t.junk_f32,
                                                          t.shared_x,
                                                          ep_name,
                                                          lay.W,
                                                          ep,
                                                          lay.E,
                                                          tp_name,
                                                          tp_world,
                                                          tp,
                                                          0,
                                                          shared_num,
                                                          lay.S,
                                                          lay.global_bs,
                                                          /*outDtype=*/0,
                                                          spec.comm_quant_mode,
                                                          group_list_type,
                                                          comm_alg(spec),
                                                          t.x_out,
                                                          &workspace,
                                                          &executor);
        if (ret != 0) return from_acl(ret);
        return from_acl(aclnnMoeDistributeCombineV2(nullptr, workspace, executor, nullptr));
    }
    if (entry == "aclnnMoeDistributeCombineV3") {
        ret = aclnnMoeDistributeCombineV3GetWorkspaceSize(t.expert_out,
                                                          t.expert_ids,
                                                          t.assist,
                                                          t.ep_recv_counts,
                                                          t.combine_scales,
                                                          t.tp_recv_counts,
                                                          t.mask,
                                                          t.junk_f32,
                                                          t.junk_f32,
                                                          t.junk_i32,
                                                          t.junk_f32,
                                                          t.shared_x,
                                                          /*elasticInfo=*/nullptr,
                                                          t.ori_x,
                                                          t.alpha1,
                                                          t.alpha2,
                                                          t.const_v,
                                                          ep_name,
                                                          lay.W,
                                                          ep,
                                                          lay.E,
                                                          tp_name,
                                                          tp_world,
                                                          tp,
                                                          0,
                                                          shared_num,
                                                          lay.S,
                                                          lay.global_bs,
                                                          /*outDtype=*/0,
                                                          spec.comm_quant_mode,
                                                          group_list_type,
                                                          comm_alg(spec),
                                                          spec.zero_experts,
                                                          spec.copy_experts,
                                                          spec.const_experts,
                                                          t.x_out,
                                                          &workspace,
                                                          &executor);
        if (ret != 0) return from_acl(ret);
        return from_acl(aclnnMoeDistributeCombineV3(nullptr, workspace, executor, nullptr));
    }
    ret = aclnnMoeDistributeCombineV4GetWorkspaceSize(t.expert_out,
                                                      t.expert_ids,
                                                      t.assist,
                                                      t.ep_recv_counts,
                                                      t.combine_scales,
                                                      t.tp_recv_counts,
                                                      t.mask,
                                                      t.junk_f32,
                                                      t.junk_f32,
                                                      t.junk_i32,
                                                      t.junk_f32,
                                                      t.shared_x,
                                                      /*elasticInfo=*/nullptr,
                                                      t.ori_x,
                                                      t.alpha1,
                                                      t.alpha2,
                                                      t.const_v,
                                                      t.performance,
                                                      ep_name,
                                                      lay.W,
                                                      ep,
                                                      lay.E,
                                                      tp_name,
                                                      tp_world,
                                                      tp,
                                                      0,
                                                      shared_num,
                                                      lay.S,
                                                      lay.global_bs,
                                                      /*outDtype=*/0,
                                                      spec.comm_quant_mode,
                                                      group_list_type,
                                                      comm_alg(spec),
                                                      spec.zero_experts,
                                                      spec.copy_experts,
                                                      spec.const_experts,
                                                      t.x_out,
                                                      &workspace,
                                                      &executor);
    if (ret != 0) return from_acl(ret);
    return from_acl(aclnnMoeDistributeCombineV4(nullptr, workspace, executor, nullptr));
}

}  // namespace

int acl_dispatch_version(const JobSpec& spec) {
    return std::max(least_version(spec), 2 + static_cast<int>(spec.seed % 3));
}

const char* acl_combine_entry(const JobSpec& spec) {
    if (spec.add_rms_norm) {
        return specials(spec) > 0 || spec.seed % 2 == 1 ? "aclnnMoeDistributeCombineAddRmsNormV2"
                                                        : "aclnnMoeDistributeCombineAddRmsNorm";
    }
    static const char* const kNames[] = {
        "aclnnMoeDistributeCombineV2", "aclnnMoeDistributeCombineV3", "aclnnMoeDistributeCombineV4"};
    const int version = std::max(least_version(spec), 2 + static_cast<int>((spec.seed / 3) % 3));
    return kNames[version - 2];
}

Status acl_dispatch(const JobSpec& spec,
                    const Layout& lay,
                    const AclTensors& t,
                    const AclGroups& groups) {
    if (spec.v2) return acl_dispatch_v2(spec, lay, t, groups);
    const int ep = groups.ep_rank, tp = groups.tp_rank;
    const std::string& ep_name = groups.ep_name;
    const std::string& tp_name = groups.tp_name;
    uint64_t workspace = 0;
    aclOpExecutor* executor = nullptr;
    aclnnStatus ret = aclnnMoeDistributeDispatchGetWorkspaceSize(
        t.x,
        t.expert_ids,
        t.scales,
        t.junk_mask,
        t.expert_scales,
        ep_name.c_str(),
        lay.W,
        ep,
        lay.E,
        tp_name.c_str(),
        lay.T == 2 ? 2 : 0,
        tp,
        0,
        lay.S > 0 ? 1 : 0,
        lay.S,
        spec.quant_mode,
        lay.global_bs,
        spec.expert_token_nums_type,
        t.expand_x,
        t.dynamic_scales != nullptr ? t.dynamic_scales : t.junk_f32,  // mode 0: any tensor
        t.expand_idx,
        t.expert_token_nums,
        t.ep_recv_counts,
        t.tp_recv_counts != nullptr ? t.tp_recv_counts
                                    : t.junk_i32,  // T = 1: any tensor, never written
        t.expand_scales,
        &workspace,
        &executor);
    if (ret != 0) return from_acl(ret);
    return from_acl(aclnnMoeDistributeDispatch(nullptr, workspace, executor, nullptr));
}

Status acl_combine(const JobSpec& spec,
                   const Layout& lay,
                   const AclTensors& t,
                   const AclGroups& groups) {
    if (spec.v2) return acl_combine_v2(spec, lay, t, groups);
    const int ep = groups.ep_rank, tp = groups.tp_rank;
    const std::string& ep_name = groups.ep_name;
    const std::string& tp_name = groups.tp_name;
    uint64_t workspace = 0;
    aclOpExecutor* executor = nullptr;
    aclnnStatus ret = aclnnMoeDistributeCombineGetWorkspaceSize(t.expert_out,
                                                                t.expert_ids,
                                                                t.expand_idx,
                                                                t.ep_recv_counts,
                                                                t.combine_scales,
                                                                t.tp_recv_counts,
                                                                t.junk_mask,
                                                                t.junk_f32,
                                                                t.junk_f32,
                                                                t.junk_i32,
                                                                t.junk_f32,
                                                                ep_name.c_str(),
                                                                lay.W,
                                                                ep,
                                                                lay.E,
                                                                tp_name.c_str(),
                                                                lay.T == 2 ? 2 : 0,
                                                                tp,
                                                                0,
                                                                lay.S > 0 ? 1 : 0,
                                                                lay.S,
                                                                lay.global_bs,
                                                                /*outDtype=*/0,
                                                                spec.comm_quant_mode,
                                                                /*groupListType=*/(ep + tp) % 2,
                                                                t.x_out,
                                                                &workspace,
                                                                &executor);
    if (ret != 0) return from_acl(ret);
    return from_acl(aclnnMoeDistributeCombine(nullptr, workspace, executor, nullptr));
}

}  // namespace moedist::harness
