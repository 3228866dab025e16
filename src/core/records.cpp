#include "core/records.hpp"

namespace moedist::core {

void RecordHeader::set_error(const Status& status) {
    error = status.raw_code();
    const std::string& text = status.message();
    const std::size_t n =
        text.size() < sizeof(error_message) - 1 ? text.size() : sizeof(error_message) - 1;
    std::memcpy(error_message, text.data(), n);
    error_message[n] = '\0';
}

const char* AttrDigest::field_name(int i) {
    static const char* const kNames[kNumFields] = {"operation",
                                                   "epWorldSize",
                                                   "moeExpertNum",
                                                   "sharedExpertRankNum",
                                                   "sharedExpertNum",
                                                   "tpWorldSize",
                                                   "K (expertIds dim 1)",
                                                   "H (hidden size)",
                                                   "quantMode",
                                                   "globalBs",
                                                   "commQuantMode",
                                                   "x dtype",
                                                   "expandX dtype",
                                                   "expertScales presence"};
    return kNames[i];
}

AttrDigest make_digest(int64_t op,
                       const MoeConfig& config,
                       int64_t top_k,
                       int64_t hidden,
                       DType x_dtype,
                       DType expand_dtype,
                       bool has_expert_scales) {
    AttrDigest d;
    d.op = op;
    d.ep_world_size = config.ep_world_size;
    d.moe_expert_num = config.moe_expert_num;
    d.shared_expert_rank_num = config.shared_expert_rank_num;
    d.shared_expert_num = config.shared_expert_rank_num > 0 ? config.shared_expert_num : 0;
    d.tp_size = config.tp_size();
    d.top_k = top_k;
    d.hidden = hidden;
    d.quant_mode = config.quant_mode;
    d.global_bs = config.global_bs;
    d.comm_quant_mode = op == 2 ? config.comm_quant_mode : 0;
    d.x_dtype = static_cast<int64_t>(x_dtype);
    d.expand_dtype = static_cast<int64_t>(expand_dtype);
    d.has_expert_scales = has_expert_scales ? 1 : 0;
    return d;
}

std::string compare_digests(
    const AttrDigest& a, int rank_a, const AttrDigest& b, int rank_b, const std::string& group) {
    for (int i = 0; i < AttrDigest::kNumFields; ++i) {
        if (a.field(i) == b.field(i)) continue;
        return std::string(AttrDigest::field_name(i)) + " must agree on every rank of " + group +
               ", got " + std::to_string(a.field(i)) + " on rank " + std::to_string(rank_a) +
               " and " + std::to_string(b.field(i)) + " on rank " + std::to_string(rank_b);
    }
    return {};
}

std::size_t extent_bytes(const TensorView& view) {
    int64_t last = 0;
    for (int32_t d = 0; d < view.ndim; ++d) {
        if (view.dim(d) == 0) return 0;
        last += (view.dim(d) - 1) * view.stride(d);
    }
    return static_cast<std::size_t>(last + 1) * dtype_size(view.dtype);
}

Status publish_tensor(transport::Transport& endpoint,
                      const TensorView& view,
                      int stage,
                      TensorRef* out) {
    *out = TensorRef{};
    if (view.ndim < 1 || view.ndim > 2) return Status::Ok();  // absent
    out->dtype = view.dtype;
    out->ndim = view.ndim;
    for (int32_t d = 0; d < view.ndim; ++d) {
        out->shape[d] = view.dim(d);
        out->strides[d] = view.stride(d);
    }
    const std::size_t bytes = extent_bytes(view);
    if (bytes == 0 || view.data == nullptr) return Status::Ok();
    return endpoint.expose(view.data, bytes, stage, &out->region);
}

TensorView view_of(transport::Transport& endpoint, int rank, const TensorRef& ref) {
    TensorView view;
    view.dtype = ref.dtype;
    view.ndim = ref.ndim;
    for (int32_t d = 0; d < ref.ndim; ++d) {
        view.shape[static_cast<std::size_t>(d)] = ref.shape[d];
        view.strides[static_cast<std::size_t>(d)] = ref.strides[d];
    }
    if (ref.present() && !ref.region.empty())
        view.data = const_cast<std::byte*>(endpoint.map(rank, ref.region));
    return view;
}

}  // namespace moedist::core
