// The routing rules and the routing plan (docs/contract.md §2, §3, §10.2–§10.4): pure functions of
// expert ids, masks and attributes, no transport. The one place that says which entry goes to
// which rank and row: dispatch, combine, the path between nodes and `moedist plan` all ask it.
//
//   V1: every entry is active; each token of a MoE rank also goes to one shared rank, by the
//       chunk rule; a shared rank keeps all its own tokens.
//   V2: a 1-D mask makes tokens [0, n) active, a 2-D mask entries; a token is active when it has
//       an active entry; active entries with ids in [E, E') are special experts (never sent);
//       every active token of every rank r goes to each shared expert j on rank (r mod R) + j·R.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "moedist/config.hpp"
#include "moedist/tensor.hpp"

namespace moedist::core {

// The expert layout of an EP group and its routing rules.
struct Topology {
    int64_t world_size = 0;         // W
    int64_t shared_rank_num = 0;    // S: ranks [0, S) hold the shared experts
    int64_t moe_expert_num = 0;     // E
    int64_t local_moe_experts = 0;  // L = E / (W - S)
    bool v2 = false;                // the V2 family's rules
    int64_t shared_experts = 0;     // N after the fix-up (V1: 1 when S > 0)
    int64_t special_experts = 0;    // Z + C + Q (V2)

    bool is_shared(int64_t rank) const { return rank < shared_rank_num; }
    int64_t rank_of_expert(int64_t expert) const {
        return shared_rank_num + expert / local_moe_experts;
    }
    int64_t local_index(int64_t expert) const { return expert % local_moe_experts; }
    int64_t first_expert(int64_t rank) const {
        return (rank - shared_rank_num) * local_moe_experts;
    }
    int64_t local_experts(int64_t rank) const { return is_shared(rank) ? 1 : local_moe_experts; }

    // V2: R = S / N ranks per shared expert; shared rank s holds expert s / R; tokens of `src`
    // meet shared expert j on rank (src mod R) + j·R.
    int64_t replicas() const { return shared_experts > 0 ? shared_rank_num / shared_experts : 0; }
    int64_t shared_expert_of(int64_t rank) const { return v2 ? rank / replicas() : 0; }
    int64_t shared_rank_for(int64_t src, int64_t j) const {
        return src % replicas() + j * replicas();
    }

    // The row of the smooth scales a row to MoE expert e (or to shared rank s) uses: V1 e + (S > 0)
    // and 0; V2 N + e and s's shared expert.
    int64_t smooth_row_moe(int64_t expert) const {
        return v2 ? shared_experts + expert : expert + (shared_rank_num > 0 ? 1 : 0);
    }
    int64_t smooth_row_shared(int64_t shared_rank) const { return shared_expert_of(shared_rank); }
};

Topology topology_of(const MoeConfig& config);

struct TokenRange {
    int64_t lo = 0;
    int64_t hi = 0;
    int64_t size() const { return hi - lo; }
    bool contains(int64_t token) const { return token >= lo && token < hi; }
};

// V1: tokens of MoE rank `src` (BS = num_tokens) that go to shared rank `s`, by the chunk rule:
// lo = ⌊(s+src)·BS/S⌋ − ⌊src·BS/S⌋, hi = ⌊(s+src+1)·BS/S⌋ − ⌊src·BS/S⌋.
TokenRange shared_chunk(int64_t src, int64_t num_tokens, int64_t shared_rank_num, int64_t s);

// V1: the shared rank that receives `token` of MoE rank `src`.
int64_t shared_rank_of_token(int64_t src,
                             int64_t num_tokens,
                             int64_t shared_rank_num,
                             int64_t token);

// Which (token, k) entries of a sender take part (V2's xActiveMask). Bytes; any non-zero byte is
// true (docs/contract.md §10.2).
struct EntryMask {
    enum Kind { kAll, kTokens, kEntries } kind = kAll;  // none, 1-D (BS,), 2-D (BS, K)
    const uint8_t* data = nullptr;
    int64_t stride0 = 0;  // in bytes
    int64_t stride1 = 0;
};

// The mask of a dispatch or combine call (V2's xActiveMask; V1 and no mask: kAll).
EntryMask entry_mask(const MoeConfig& config, const std::optional<TensorView>& mask);

// A send plan as its receivers read it: the sender's published arrays.
struct PlanView {
    const int32_t* expert_begin = nullptr;       // E + 1 prefix sums
    const int32_t* entries_by_expert = nullptr;  // flattened indices t·K + k, by expert
    const int32_t* active_tokens = nullptr;      // ascending; null: tokens [0, num_active)
    int64_t num_active = 0;                      // active tokens
    int64_t num_tokens = 0;
    int64_t top_k = 0;
    int64_t num_experts = 0;
    int64_t rows_for_expert(int64_t expert) const {
        return expert_begin[expert + 1] - expert_begin[expert];
    }
    int64_t active_token(int64_t i) const { return active_tokens ? active_tokens[i] : i; }
};

// What one rank sends, from its expert ids (and mask) alone.
//   expand_idx[t*K+k]   how many earlier active flattened entries went to the same MoE expert
//   entries of expert e = entries_by_expert[expert_begin[e] .. expert_begin[e+1]), each a
//                         flattened index t*K+k of an active entry, in ascending (sender) order
//   active tokens       tokens with an active entry, ascending (all of them in V1: not listed)
struct SendPlan {
    int64_t num_tokens = 0;
    int64_t top_k = 0;
    int64_t num_experts = 0;
    std::vector<int32_t> expand_idx;
    std::vector<int32_t> expert_begin;
    std::vector<int32_t> entries_by_expert;
    // Active tokens: [0, active_count) unless `listed` (a 2-D mask), then active_tokens, with
    // active_index mapping a token to its index there (-1: inactive).
    bool listed = false;
    int64_t active_count = 0;
    std::vector<int32_t> active_tokens;
    std::vector<int32_t> active_index;
    // The first (flattened order) active id outside [0, E + special), if any.
    bool has_bad_id = false;
    int64_t bad_token = 0;
    int64_t bad_k = 0;
    int64_t bad_id = 0;
    // A 1-D mask that is not a prefix: its first token out of order.
    bool has_bad_mask = false;
    int64_t bad_mask_token = 0;

    int64_t num_active() const { return active_count; }
    int64_t active_token_at(int64_t i) const {
        return listed ? active_tokens[static_cast<std::size_t>(i)] : i;
    }
    // A token's index among the active tokens (its row among a shared expert's rows from this
    // rank), or -1 when it is inactive.
    int64_t index_of_active(int64_t token) const {
        if (listed) return active_index[static_cast<std::size_t>(token)];
        return token < active_count ? token : -1;
    }
    int64_t rows_for_expert(int64_t expert) const {
        return expert_begin[static_cast<std::size_t>(expert + 1)] -
               expert_begin[static_cast<std::size_t>(expert)];
    }
    operator PlanView() const {
        return {expert_begin.data(),
                entries_by_expert.data(),
                listed ? active_tokens.data() : nullptr,
                active_count,
                num_tokens,
                top_k,
                num_experts};
    }
};

// Builds `plan` in place (its vectors keep their capacity across calls). ids is (num_tokens,
// top_k) int32 with element strides (row_stride, col_stride); ids in [num_experts, num_experts +
// special_experts) are special experts (active but not sent).
void build_send_plan(const int32_t* ids,
                     int64_t row_stride,
                     int64_t col_stride,
                     int64_t num_tokens,
                     int64_t top_k,
                     int64_t num_experts,
                     SendPlan* plan,
                     const EntryMask& mask = {},
                     int64_t special_experts = 0);

// Whether entry (t, k) takes part under `mask` (the plan knows the 1-D mask's prefix).
inline bool entry_active(const EntryMask& mask, const SendPlan& plan, int64_t t, int64_t k) {
    switch (mask.kind) {
        case EntryMask::kAll:
            return true;
        case EntryMask::kTokens:
            return t < plan.active_count;
        case EntryMask::kEntries:
            return mask.data[t * mask.stride0 + k * mask.stride1] != 0;
    }
    return false;
}

// Whether shared rank `dst` receives rows from `src`: V1 its own tokens and MoE ranks' chunks;
// V2 every src ≡ dst (mod R).
bool shared_receives_from(const Topology& topo, int64_t dst, int64_t src);

// The tokens of `src` (BS = src_num_tokens) shared rank `dst` receives, in row order, as a range
// of `src_plan`'s active-token indices (V2) or of tokens (V1; the chunk rule).
TokenRange shared_tokens(const Topology& topo,
                         int64_t dst,
                         int64_t src,
                         int64_t src_num_tokens,
                         const PlanView& src_plan);

// Rows receiving rank `dst` gets from `src` for its local expert `local_expert`.
int64_t rows_from(const Topology& topo,
                  int64_t dst,
                  int64_t src,
                  int64_t local_expert,
                  int64_t src_num_tokens,
                  const PlanView& src_plan);

// Rows receiving rank `dst` gets from `src` over all its local experts (O(1): a rank's experts
// are contiguous in the sender's expert_begin).
int64_t rows_to_rank(const Topology& topo,
                     int64_t dst,
                     int64_t src,
                     int64_t src_num_tokens,
                     const PlanView& src_plan);

// Where rows land on a receiving rank: block (local expert e, source src) has index e*W+src;
// rows of block i are [block_end[i-1], block_end[i]) (block_end[-1] = 0). block_end is exactly
// the contract's epRecvCounts (inclusive running total).
struct ReceiveLayout {
    std::vector<int64_t> block_end;
    int64_t total_rows = 0;
    int64_t block_begin(int64_t block) const {
        return block == 0 ? 0 : block_end[static_cast<std::size_t>(block - 1)];
    }
};

// The expert-padded layout (MoeConfig::RowLayout::kExpertPadded): local expert e = block / W starts
// at row e·W·maxBs and its blocks follow each other from there. The first row of `block` from the
// packed (epRecvCounts) begins of the block and of its expert's first block.
inline int64_t padded_block_begin(int64_t block,
                                  int64_t world,
                                  int64_t max_bs,
                                  int64_t packed_begin,
                                  int64_t expert_packed_begin) {
    return (block / world) * world * max_bs + (packed_begin - expert_packed_begin);
}

// A block's packed begin from inclusive running totals `counts` (epRecvCounts): 0 for block 0.
template <class Counts>  // int64_t(int64_t i): running total through block i
int64_t packed_begin_of(int64_t block, Counts counts) {
    return block == 0 ? 0 : counts(block - 1);
}

template <class RowsFrom>  // int64_t(int64_t src, int64_t local_expert)
void build_receive_layout(int64_t world_size,
                          int64_t local_experts,
                          RowsFrom rows,
                          ReceiveLayout* out) {
    out->block_end.resize(static_cast<std::size_t>(world_size * local_experts));
    int64_t running = 0;
    for (int64_t e = 0; e < local_experts; ++e) {
        for (int64_t src = 0; src < world_size; ++src) {
            running += rows(src, e);
            out->block_end[static_cast<std::size_t>(e * world_size + src)] = running;
        }
    }
    out->total_rows = running;
}

}  // namespace moedist::core
