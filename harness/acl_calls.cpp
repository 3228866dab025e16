#include "harness/acl_calls.hpp"

#include "acl/acl.h"
#include "aclnnop/aclnn_moe_distribute_combine.h"
#include "aclnnop/aclnn_moe_distribute_dispatch.h"

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

}  // namespace

Status acl_dispatch(const JobSpec& spec,
                    const Layout& lay,
                    const AclTensors& t,
                    const AclGroups& groups) {
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
