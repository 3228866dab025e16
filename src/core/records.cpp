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

}  // namespace moedist::core
