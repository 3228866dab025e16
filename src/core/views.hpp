// What a rank reads of its peers in a call, in this process's address space: a sender's rows
// (dispatch) and an owner of expert rows (combine). Built from records through the endpoint
// (map), or, for ranks on another node, from the bytes that crossed nodes (remote.hpp).
#pragma once

#include <cstdint>
#include <optional>

#include "core/plan.hpp"
#include "core/row_writer.hpp"
#include "moedist/tensor.hpp"

namespace moedist::core {

// One sender as a receiver reads it. Rows are indexed by the sender's token; for a sender on
// another node only the tokens this node needs came over, compacted: token t is row
// compact_of[t] of x (and of every per-token view), and the plan's entries are compact
// flattened indices.
struct SourceView {
    int64_t num_tokens = 0;  // the sender's BS
    PlanView plan;
    RowSource row;
    TensorView expert_scales;
    TensorView extra;        // data null when the call carries none
    TensorView staged_rows;  // data null when the sender staged nothing
    std::optional<TensorView> staged_scales;
    const int32_t* compact_of = nullptr;  // null: identity
    const int32_t* token_of = nullptr;    // compact row -> the sender's token (null: identity)
    int64_t row_of(int64_t token) const { return compact_of ? compact_of[token] : token; }
    int64_t original_of(int64_t compact_row) const {
        return token_of ? token_of[compact_row] : compact_row;
    }
    // Active token i of the plan (V2): its row in x (or the staged rows) and its token. The plan
    // of a sender on another node lists its active tokens as compact rows.
    int64_t active_row(int64_t i) const {
        const int64_t t = plan.active_token(i);
        return token_of ? t : row_of(t);
    }
    int64_t active_original(int64_t i) const { return original_of(plan.active_token(i)); }
};

// One owner of expert rows (an EP rank of my group or of the TP peer's), as this rank reads it.
struct OwnerView {
    TensorView expand_x;
    TensorView ep_send_counts;
    TensorView tp_send_counts;  // data null when T == 1
    TensorView assist;          // V2: int32 triples (src, t, slot) of its own rows
    int64_t tp_rank = 0;
    int64_t padded_stride = 0;  // expert-padded rows: block i at i·padded_stride (0: packed)
};

}  // namespace moedist::core
