#include "moedist/config.hpp"

#include <climits>
#include <cstdint>
#include <string>

#include "core/shapes.hpp"

namespace moedist {

int64_t MoeConfig::capacity_rows(int64_t num_tokens, int64_t top_k) const {
    // Callers that take sizes from users check T·A first (validate.cpp, check_capacity), so the
    // value fits int64 here.
    return static_cast<int64_t>(core::capacity_rows(*this, num_tokens, top_k));
}

namespace {
int64_t saturated(__int128 v) {
    constexpr __int128 kMax = INT64_MAX;
    return static_cast<int64_t>(v > kMax ? kMax : v);
}
}  // namespace

DispatchShapes MoeConfig::shapes(int64_t num_tokens,
                                 int64_t top_k,
                                 int64_t hidden,
                                 DType x_dtype) const {
    const core::OutputShapes s = core::output_shapes(*this, num_tokens, top_k, hidden, x_dtype);
    DispatchShapes out;
    out.capacity = saturated(s.capacity);
    out.expand_x_rows = saturated(s.rows);
    out.hidden = hidden;
    out.makes_scales = s.makes_scales;
    out.scale_columns = s.scale_columns;
    out.expand_idx = saturated(s.expand_idx);
    out.assist_info = saturated(s.assist_info);
    out.expert_token_nums = s.expert_token_nums;
    out.ep_recv_counts = s.ep_recv_counts;
    out.tp_recv_counts = s.tp_recv_counts;
    out.expand_scales = saturated(s.expand_scales);
    return out;
}

namespace {
std::string range(int64_t lo, int64_t hi) {
    return "in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
}
}  // namespace

// The attribute rules of docs/contract.md §2 and §7 (generic profile), in the order of Ascend's
// documentation.
Status MoeConfig::validate() const {
#define MOEDIST_RULE(cond, param, expected, actual) \
    if (!(cond))                                    \
    return {Code::kInnerTiling,                     \
            std::string(param) + " must be " + (expected) + ", got " + std::to_string(actual)}
    MOEDIST_RULE(ep_world_size >= 1 && ep_world_size <= kMaxWorldSize,
                 "epWorldSize",
                 range(1, kMaxWorldSize),
                 ep_world_size);
    MOEDIST_RULE(ep_rank_id >= 0 && ep_rank_id < ep_world_size,
                 "epRankId",
                 range(0, ep_world_size - 1),
                 ep_rank_id);
    MOEDIST_RULE(shared_expert_rank_num >= 0 && shared_expert_rank_num < ep_world_size,
                 "sharedExpertRankNum",
                 range(0, ep_world_size - 1),
                 shared_expert_rank_num);
    MOEDIST_RULE(moe_expert_num >= 1 && moe_expert_num <= kMaxExperts,
                 "moeExpertNum",
                 range(1, kMaxExperts),
                 moe_expert_num);
    MOEDIST_RULE(
        moe_expert_num % moe_rank_num() == 0,
        "moeExpertNum",
        "a multiple of epWorldSize - sharedExpertRankNum = " + std::to_string(moe_rank_num()),
        moe_expert_num);
    MOEDIST_RULE(expert_shard_type == 0, "expertShardType", std::string("0"), expert_shard_type);
    // sharedExpertNum is ignored when sharedExpertRankNum = 0 (N := 0, the fix-up).
    MOEDIST_RULE(api == Api::kV1 || api == Api::kV2,
                 "api",
                 std::string("V1 or V2"),
                 static_cast<int64_t>(api));
    if (!v2()) {
        MOEDIST_RULE(shared_expert_rank_num == 0 || shared_expert_num == 1,
                     "sharedExpertNum",
                     std::string("1 when sharedExpertRankNum > 0"),
                     shared_expert_num);
    } else {
        MOEDIST_RULE(
            shared_expert_rank_num == 0 || (shared_expert_num >= 1 && shared_expert_num <= 4),
            "sharedExpertNum",
            std::string("in [1, 4] when sharedExpertRankNum > 0"),
            shared_expert_num);
        MOEDIST_RULE(shared_expert_rank_num == 0 || shared_expert_rank_num % shared_expert_num == 0,
                     "sharedExpertRankNum",
                     "a multiple of sharedExpertNum = " + std::to_string(shared_expert_num),
                     shared_expert_rank_num);
        MOEDIST_RULE(
            zero_expert_num >= 0 && copy_expert_num >= 0 && const_expert_num >= 0 &&
                zero_expert_num + copy_expert_num + const_expert_num + moe_expert_num < INT32_MAX,
            "zeroExpertNum + copyExpertNum + constExpertNum",
            "in [0, 2^31 - 1 - moeExpertNum)",
            zero_expert_num + copy_expert_num + const_expert_num);
        static const char* const kAlgs[] = {
            "", "0", "fullmesh", "fullmesh_v1", "fullmesh_v2", "hierarchy"};
        bool known_alg = false;
        for (const char* a : kAlgs) known_alg = known_alg || comm_alg == a;
        if (!known_alg) {
            return {
                Code::kInnerTiling,
                "commAlg must be \"\", \"0\", \"fullmesh\", \"fullmesh_v1\", \"fullmesh_v2\" or "
                "\"hierarchy\", got \"" +
                    comm_alg.substr(0, 40) + "\""};
        }
    }
    if (!v2()) {
        MOEDIST_RULE(zero_expert_num == 0 && copy_expert_num == 0 && const_expert_num == 0,
                     "zeroExpertNum, copyExpertNum and constExpertNum",
                     std::string("0 (special experts are V2's)"),
                     zero_expert_num + copy_expert_num + const_expert_num);
    }
    MOEDIST_RULE(
        tp_world_size >= 0 && tp_world_size <= 2, "tpWorldSize", range(0, 2), tp_world_size);
    MOEDIST_RULE(
        tp_rank_id >= 0 && tp_rank_id < tp_size(), "tpRankId", range(0, tp_size() - 1), tp_rank_id);
    MOEDIST_RULE(tp_size() == 1 || local_moe_expert_num() == 1,
                 "moeExpertNum / (epWorldSize - sharedExpertRankNum)",
                 std::string("1 when tpWorldSize = 2"),
                 local_moe_expert_num());
    MOEDIST_RULE(quant_mode >= static_cast<int64_t>(QuantMode::kNone) &&
                     quant_mode <= static_cast<int64_t>(QuantMode::kMx),
                 "quantMode",
                 range(0, 4),
                 quant_mode);
    MOEDIST_RULE(expert_token_nums_type == 0 || expert_token_nums_type == 1,
                 "expertTokenNumsType",
                 std::string("0 or 1"),
                 expert_token_nums_type);
    MOEDIST_RULE(
        global_bs >= 0 && global_bs <= kMaxGlobalBs, "globalBs", range(0, kMaxGlobalBs), global_bs);
    MOEDIST_RULE(row_layout == RowLayout::kPacked || row_layout == RowLayout::kExpertPadded,
                 "rowLayout",
                 std::string("0 (packed) or 1 (expert-padded)"),
                 static_cast<int64_t>(row_layout));
    if (expert_padded()) {
        MOEDIST_RULE(v2() && shared_expert_rank_num == 0 && tp_size() == 1,
                     "rowLayout",
                     std::string("0 (packed) unless V2 without shared ranks and TP"),
                     static_cast<int64_t>(row_layout));
    }
    MOEDIST_RULE(comm_quant_mode == 0 || comm_quant_mode == 2,
                 "commQuantMode",
                 std::string("0 or 2"),
                 comm_quant_mode);
#undef MOEDIST_RULE
    return Status::Ok();
}

}  // namespace moedist
