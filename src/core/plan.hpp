// The routing plan (docs/contract.md §2, §3): pure functions of expert ids and attributes, no transport.
#pragma once

#include <cstdint>
#include <vector>

namespace moedist::core {

// The expert layout of an EP group.
struct Topology {
    int64_t world_size = 0;         // W
    int64_t shared_rank_num = 0;    // S: ranks [0, S) hold the shared expert
    int64_t moe_expert_num = 0;     // E
    int64_t local_moe_experts = 0;  // L = E / (W - S)

    bool is_shared(int64_t rank) const { return rank < shared_rank_num; }
    int64_t rank_of_expert(int64_t expert) const {
        return shared_rank_num + expert / local_moe_experts;
    }
    int64_t local_index(int64_t expert) const { return expert % local_moe_experts; }
    int64_t first_expert(int64_t rank) const {
        return (rank - shared_rank_num) * local_moe_experts;
    }
    int64_t local_experts(int64_t rank) const { return is_shared(rank) ? 1 : local_moe_experts; }
};

struct TokenRange {
    int64_t lo = 0;
    int64_t hi = 0;
    int64_t size() const { return hi - lo; }
    bool contains(int64_t token) const { return token >= lo && token < hi; }
};

// Tokens of MoE rank `src` (BS = num_tokens) that go to shared rank `s`, by the chunk rule:
// lo = ⌊(s+src)·BS/S⌋ − ⌊src·BS/S⌋, hi = ⌊(s+src+1)·BS/S⌋ − ⌊src·BS/S⌋.
TokenRange shared_chunk(int64_t src, int64_t num_tokens, int64_t shared_rank_num, int64_t s);

// The shared rank that receives `token` of MoE rank `src`.
int64_t shared_rank_of_token(int64_t src,
                             int64_t num_tokens,
                             int64_t shared_rank_num,
                             int64_t token);

// A send plan as its receivers read it: the sender's published arrays.
struct PlanView {
    const int32_t* expert_begin = nullptr;       // E + 1 prefix sums
    const int32_t* entries_by_expert = nullptr;  // BS·K flattened indices, by expert
    int64_t num_tokens = 0;
    int64_t top_k = 0;
    int64_t num_experts = 0;
    int64_t rows_for_expert(int64_t expert) const {
        return expert_begin[expert + 1] - expert_begin[expert];
    }
};

// What one rank sends, from its expert ids alone.
//   expand_idx[t*K+k]   how many earlier flattened entries went to the same expert
//   entries of expert e = entries_by_expert[expert_begin[e] .. expert_begin[e+1]), each a
//                         flattened index t*K+k, in ascending (sender) order
struct SendPlan {
    int64_t num_tokens = 0;
    int64_t top_k = 0;
    int64_t num_experts = 0;
    std::vector<int32_t> expand_idx;
    std::vector<int32_t> expert_begin;
    std::vector<int32_t> entries_by_expert;
    // The first (flattened order) id outside [0, E), if any.
    bool has_bad_id = false;
    int64_t bad_token = 0;
    int64_t bad_k = 0;
    int64_t bad_id = 0;

    int64_t rows_for_expert(int64_t expert) const {
        return expert_begin[static_cast<std::size_t>(expert + 1)] -
               expert_begin[static_cast<std::size_t>(expert)];
    }
    operator PlanView() const {
        return {expert_begin.data(), entries_by_expert.data(), num_tokens, top_k, num_experts};
    }
};

// Builds `plan` in place (its vectors keep their capacity across calls).
// ids is (num_tokens, top_k) int32 with element strides (row_stride, col_stride).
void build_send_plan(const int32_t* ids,
                     int64_t row_stride,
                     int64_t col_stride,
                     int64_t num_tokens,
                     int64_t top_k,
                     int64_t num_experts,
                     SendPlan* plan);

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
