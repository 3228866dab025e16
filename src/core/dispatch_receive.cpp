// Dispatch's receive half: every sender as this rank reads it, the run-time checks, and the single
// copy into this rank's outputs.
//
// expandX of a MoE rank with L local experts (receiver's view), T == 2:
//
//   row 0 ┌──────────────────────────────┐
//         │ e=0: src 0 rows, in src 0's flattened (token,k) order (active entries only)
//         │      src 1 rows …  src W−1 rows
//         │ e=1: src 0 … src W−1      (block e·W+src ends at epRecvCounts[e·W+src])
//         │ …
//   own   ├──────────────────────────────┤
//         │ the TP peer's own rows, in the peer's order (its epRecvCounts verbatim after mine)
//   own+peer ├───────────────────────────┤
//         │ tail up to dim 0: untouched (zero bytes with zero padding)
//         └──────────────────────────────┘
//
// A shared rank has L = 1 and its blocks are by source. V1: its own tokens first (src = itself,
// since no other shared rank sends to it), then each MoE rank's chunk in token order. V2: every
// src ≡ this rank (mod R) ascending, each src's active tokens in order.
//
// Every row is written once, by the receiver, straight from the sender's x (quantized on the
// way when the mode asks) or, when the quantization does not depend on the expert, from the rows
// the sender quantized once before arriving. V2 also writes each own row's triple
// (src, t, slot) into assistInfo: slot k for a MoE row, K + j for shared expert j.
#include <algorithm>
#include <cstring>

#include "core/dispatch_parts.hpp"
#include "core/row_writer.hpp"
#include "core/shapes.hpp"
#include "core/tensor_access.hpp"
#include "util/memory_ops.hpp"

namespace moedist::core {
namespace {

int64_t capacity_of(const MoeConfig& config, int64_t rank, int64_t max_bs, int64_t top_k) {
    return static_cast<int64_t>(capacity_rows_of(config, rank, max_bs, top_k));
}

Status unreachable(transport::Transport& memory,
                   int rank,
                   const char* what,
                   const std::string& group) {
    if (std::string why = memory.gone(rank, true); !why.empty()) return {Code::kRuntime, why};
    return {Code::kRuntime,
            std::string("the ") + what + " of rank " + std::to_string(rank) + " of '" + group +
                "' must be readable by its receivers, got memory this process cannot map"};
}

// Maps a sender's tensors into `v`; the first failure.
Status map_tensors(const DispatchRecord& rec,
                   int rank,
                   transport::Transport& memory,
                   const std::string& group,
                   SourceView* v) {
    auto mapped = [&](const TensorRef& ref, TensorView* out, const char* what) -> Status {
        *out = view_of(memory, rank, ref);
        if (ref.present() && !ref.region.empty() && out->data == nullptr)
            return unreachable(memory, rank, what, group);
        return Status::Ok();
    };
    TensorView staged_scales;
    if (Status s = mapped(rec.x, &v->row.x, "x"); !s.ok()) return s;
    if (Status s = mapped(rec.scales, &v->row.scales, "scales"); !s.ok()) return s;
    if (Status s = mapped(rec.expert_scales, &v->expert_scales, "expertScales"); !s.ok()) return s;
    if (Status s = mapped(rec.extra, &v->extra, "extra"); !s.ok()) return s;
    if (Status s = mapped(rec.staged_rows, &v->staged_rows, "staged rows"); !s.ok()) return s;
    if (Status s = mapped(rec.staged_scales, &staged_scales, "staged scales"); !s.ok()) return s;
    if (rec.staged_scales.present()) v->staged_scales = staged_scales;
    return Status::Ok();
}

}  // namespace

Status read_sources(const DispatchRecords& records,
                    const RecordBounds& bounds,
                    transport::Transport& memory,
                    const std::string& group,
                    std::vector<SourceView>* sources,
                    std::vector<std::vector<int32_t>>* plans,
                    Status* local) {
    const int64_t world = bounds.world;
    sources->resize(static_cast<std::size_t>(world));
    plans->resize(static_cast<std::size_t>(world));
    const int my_node = memory.node_of(memory.rank());
    for (int64_t r = 0; r < world; ++r) {
        const DispatchRecord& rec = records(r);
        const int rank = static_cast<int>(r);
        auto failed = [&](const std::string& why) -> Status {
            return {
                Code::kRuntime,
                "the dispatch record of rank " + std::to_string(r) + " of '" + group + "' " + why};
        };
        if (std::string why = check_dispatch_record(rec, r, bounds); !why.empty())
            return failed(why);
        SourceView& v = (*sources)[static_cast<std::size_t>(r)];
        v = SourceView{};
        v.num_tokens = rec.num_tokens;
        if (memory.node_of(rank) != my_node || !local->ok()) continue;
        const auto* arrays = reinterpret_cast<const int32_t*>(memory.map(rank, rec.plan));
        if (arrays == nullptr) {
            *local = unreachable(memory, rank, "plan", group);
            continue;
        }
        auto& plan = (*plans)[static_cast<std::size_t>(r)];
        plan.assign(arrays, arrays + rec.plan.bytes / sizeof(int32_t));
        if (std::string why = check_plan_arrays(plan.data(),
                                                bounds.experts,
                                                rec.num_tokens,
                                                rec.top_k,
                                                rec.num_active,
                                                rec.active_listed != 0);
            !why.empty()) {
            *local = failed(why);
            continue;
        }
        const int32_t* entries = plan.data() + rec.num_experts + 1;
        v.plan = PlanView{plan.data(),
                          entries,
                          rec.active_listed ? entries + rec.num_tokens * rec.top_k : nullptr,
                          rec.num_active,
                          rec.num_tokens,
                          rec.top_k,
                          rec.num_experts};
        if (Status s = map_tensors(rec, rank, memory, group, &v); !s.ok()) *local = s;
    }
    return Status::Ok();
}

Status check_group(const DispatchOp& op,
                   const Topology& topo,
                   const DispatchRecords& records,
                   const std::vector<SourceView>& sources,
                   int64_t group_bs,
                   const std::string& group_name) {
    const int64_t world = topo.world_size;
    const int64_t id_limit = topo.moe_expert_num + topo.special_experts;  // E'
    for (int64_t r = 0; r < world; ++r) {
        const DispatchRecord& rec = records(r);
        auto where = [&] { return " on rank " + std::to_string(r) + " of '" + group_name + "'"; };
        if (rec.bad_mask != 0) {
            return {Code::kRuntime,
                    "xActiveMask" + where() + " must be a prefix (true for tokens [0, n) only), " +
                        "got token " + std::to_string(rec.bad_mask_token) + " out of order"};
        }
        if (rec.bad_id != 0) {
            return {Code::kRuntime,
                    "expertIds[" + std::to_string(rec.bad_token) + "][" +
                        std::to_string(rec.bad_k) + "]" + where() + " must be in [0, " +
                        std::to_string(id_limit) + "), got " + std::to_string(rec.bad_value)};
        }
        if (op.config.global_bs == 0 && rec.num_tokens != group_bs) {
            return {Code::kRuntime,
                    "BS must be equal on every rank when globalBs = 0, got " +
                        std::to_string(group_bs) + " and " + std::to_string(rec.num_tokens) +
                        where()};
        }
    }
    const int64_t max_bs = op.config.global_bs == 0 ? group_bs : op.config.global_bs / world;
    if (op.config.expert_padded()) {  // every block must fit its maxBs rows
        for (int64_t r = 0; r < world; ++r) {
            if (records(r).most_rows_to_one_expert > max_bs) {
                return {Code::kRuntime,
                        "rows rank " + std::to_string(r) + " of '" + group_name +
                            "' sends one expert must be at most maxBs = " + std::to_string(max_bs) +
                            " in the expert-padded row layout, got " +
                            std::to_string(records(r).most_rows_to_one_expert) +
                            " (an expert chosen twice by a token?)"};
            }
        }
    }
    for (int64_t dst = 0; dst < world; ++dst) {
        int64_t total = 0;
        for (int64_t src = 0; src < world; ++src) {
            if (world <= DispatchRecord::kRecordedRanks) {  // the sender counted them itself
                total += records(src).rows_to[dst];
                continue;
            }
            const SourceView& v = sources[static_cast<std::size_t>(src)];
            if (v.plan.expert_begin == nullptr) continue;  // unreachable: reported by its reader
            total += rows_to_rank(topo, dst, src, v.num_tokens, v.plan);
        }
        const int64_t capacity = capacity_of(op.config, dst, max_bs, op.top_k);
        if (total > capacity) {
            return {Code::kRuntime,
                    "rows received by rank " + std::to_string(dst) + " of '" + group_name +
                        "' must be at most A = " + std::to_string(capacity) + ", got " +
                        std::to_string(total)};
        }
    }
    return Status::Ok();
}

namespace {

void build_layout(const Topology& topo,
                  int64_t dst,
                  const std::vector<SourceView>& sources,
                  ReceiveLayout* layout) {
    build_receive_layout(
        topo.world_size,
        topo.local_experts(dst),
        [&](int64_t src, int64_t le) {
            const SourceView& v = sources[static_cast<std::size_t>(src)];
            return rows_from(topo, dst, src, le, v.num_tokens, v.plan);
        },
        layout);
}

// Row `row` of expandExtra gets row `token` of a sender's extra (same dtype and columns: checked).
void copy_extra(const TensorView& extra, int64_t token, const TensorView& out, int64_t row) {
    const auto elem = dtype_size(out.dtype);
    const int64_t cols = out.dim(1);
    if (extra.stride(1) == 1 && out.stride(1) == 1) {
        std::memcpy(element_ptr(out, row, 0),
                    element_ptr(extra, token, 0),
                    static_cast<std::size_t>(cols) * elem);
        return;
    }
    for (int64_t c = 0; c < cols; ++c)
        std::memcpy(element_ptr(out, row, c), element_ptr(extra, token, c), elem);
}

// Where the rows of one EP group go: the writer, and (own rows) expandScales and assistInfo.
struct Fill {
    const DispatchOp& op;
    const Topology& topo;
    RowWriter& writer;
    bool own;

    void put(const SourceView& src, int64_t token, int64_t row, int64_t scale_row) {
        if (src.staged_rows.data != nullptr) {
            writer.copy_staged(src.staged_rows, src.staged_scales, token, row);
        } else {
            writer.write(src.row, token, row, scale_row);
        }
        if (op.out.expand_extra) copy_extra(src.extra, token, *op.out.expand_extra, row);
    }
    void extras(int64_t row, int64_t src, int64_t token, int64_t slot, float weight) {
        if (!own) return;
        if (op.out.expand_scales && op.in.expert_scales)
            store1<float>(*op.out.expand_scales, row, weight);
        if (op.config.v2() && op.out.assist_info) {
            store1<int32_t>(*op.out.assist_info, 3 * row, static_cast<int32_t>(src));
            store1<int32_t>(*op.out.assist_info, 3 * row + 1, static_cast<int32_t>(token));
            store1<int32_t>(*op.out.assist_info, 3 * row + 2, static_cast<int32_t>(slot));
        }
    }

    // A shared rank's rows from `s`: V1 its own tokens or its chunk, V2 its active tokens.
    void shared_rows(const SourceView& src, int64_t s, int64_t row) {
        const int64_t dst = op.config.ep_rank_id;
        const TokenRange range = shared_tokens(topo, dst, s, src.num_tokens, src.plan);
        const int64_t slot = op.top_k + topo.shared_expert_of(dst);
        const int64_t scale_row = topo.smooth_row_shared(dst);
        for (int64_t i = range.lo; i < range.hi; ++i, ++row) {
            if (topo.v2) {
                put(src, src.active_row(i), row, scale_row);
                extras(row, s, src.active_original(i), slot, 1.0f);
            } else {
                put(src, src.row_of(i), row, scale_row);
                extras(row, s, i, slot, 1.0f);
            }
        }
    }

    // A MoE rank's rows for its local expert `le` from `s`, in s's flattened order.
    void expert_rows(const SourceView& src, int64_t s, int64_t le, int64_t row) {
        const int64_t expert = topo.first_expert(op.config.ep_rank_id) + le;
        const PlanView& plan = src.plan;
        const int64_t scale_row = topo.smooth_row_moe(expert);
        const bool weights = own && op.out.expand_scales && op.in.expert_scales;
        for (int64_t i = plan.expert_begin[expert]; i < plan.expert_begin[expert + 1]; ++i, ++row) {
            const int64_t flat = plan.entries_by_expert[i];
            const int64_t token = flat / plan.top_k;
            const int64_t k = flat % plan.top_k;
            put(src, token, row, scale_row);
            extras(row,
                   s,
                   src.original_of(token),
                   k,
                   weights ? load2<float>(src.expert_scales, token, k) : 0.0f);
        }
    }

    // The rows this rank receives from one EP group, starting at `row_base`.
    void group(const std::vector<SourceView>& sources, const ReceiveLayout& layout, int64_t base) {
        const int64_t world = topo.world_size;
        const int64_t dst = op.config.ep_rank_id;
        // Expert-padded: expert le's blocks from row le·W·maxBs (check_group bounded them).
        const int64_t max_bs = op.config.max_bs(op.num_tokens);
        for (int64_t le = 0; le < topo.local_experts(dst); ++le) {
            for (int64_t s = 0; s < world; ++s) {
                const SourceView& src = sources[static_cast<std::size_t>(s)];
                const int64_t block = le * world + s;
                const int64_t packed = layout.block_begin(block);
                const int64_t row =
                    base + (op.config.expert_padded()
                                ? padded_block_begin(
                                      block, world, max_bs, packed, layout.block_begin(le * world))
                                : packed);
                if (topo.is_shared(dst)) {
                    shared_rows(src, s, row);
                } else {
                    expert_rows(src, s, le, row);
                }
            }
        }
    }
};

void write_counts(const DispatchOp& op,
                  const Topology& topo,
                  const DispatchScratch& s,
                  int64_t own_rows,
                  int64_t peer_rows,
                  bool has_peer) {
    const int64_t rank = op.config.ep_rank_id;
    const int64_t blocks = topo.world_size * topo.local_experts(rank);
    for (int64_t i = 0; i < blocks; ++i) {
        store1<int32_t>(op.out.ep_recv_counts,
                        i,
                        static_cast<int32_t>(s.own_layout.block_end[static_cast<std::size_t>(i)]));
    }
    if (has_peer) {  // (T == 2 across nodes: the relay writes the peer's part, tp_relay.hpp)
        for (int64_t i = 0; i < blocks; ++i) {
            store1<int32_t>(
                op.out.ep_recv_counts,
                blocks + i,
                static_cast<int32_t>(s.peer_layout.block_end[static_cast<std::size_t>(i)]));
        }
        store1<int32_t>(
            *op.out.tp_recv_counts, op.config.tp_rank_id, static_cast<int32_t>(own_rows));
        store1<int32_t>(
            *op.out.tp_recv_counts, 1 - op.config.tp_rank_id, static_cast<int32_t>(peer_rows));
    }
    const int64_t local = topo.local_experts(rank);
    if (local == 1) {
        store1<int64_t>(op.out.expert_token_nums, 0, own_rows + peer_rows);
        return;
    }
    int64_t previous = 0;
    for (int64_t e = 0; e < local; ++e) {
        const int64_t end =
            s.own_layout
                .block_end[static_cast<std::size_t>(e * topo.world_size + topo.world_size - 1)];
        store1<int64_t>(op.out.expert_token_nums,
                        e,
                        op.config.expert_token_nums_type == 0 ? end : end - previous);
        previous = end;
    }
}

// A sender's staged rows can be copied into this rank's outputs: contiguous rows, and scales of
// this rank's dynamicScales layout when it has one.
bool staged_fits(const SourceView& v, const TensorView* dyn) {
    if (v.staged_rows.data == nullptr) return true;
    if (v.staged_rows.stride(1) != 1) return false;
    if (dyn == nullptr) return true;
    if (!v.staged_scales || v.staged_scales->data == nullptr) return false;
    const TensorView& staged = *v.staged_scales;
    return staged.ndim == dyn->ndim && dtype_size(staged.dtype) == dtype_size(dyn->dtype) &&
           (dyn->ndim == 1 || staged.dim(1) >= dyn->dim(1));
}

// Rows every rank of a group receives in this call (each sender's entries, plus its shared
// rows), for the streaming decision: the same on every rank.
int64_t rows_sent_by_group(const Topology& topo,
                           int64_t top_k,
                           const std::vector<SourceView>& sources) {
    int64_t rows = 0;
    for (const SourceView& v : sources) rows += v.num_tokens * (top_k + topo.shared_experts);
    return rows;
}

// Zero padding in the expert-padded layout: rows [e·W·maxBs + rows of e, (e + 1)·W·maxBs) of every
// local expert e, and everything past the last (expandX, dynamicScales, expandScales, assistInfo).
void zero_padded_gaps(const DispatchOp& op, bool streaming) {
    const int64_t world = op.config.ep_world_size;
    const int64_t region = world * op.config.max_bs(op.num_tokens);
    const int64_t local = op.config.local_expert_num();
    auto zero = [&](int64_t lo, int64_t hi) {
        zero_rows(op.out.expand_x, lo, hi, streaming);
        if (op.format.makes_scales()) {
            const TensorView& dyn = *op.out.dynamic_scales;
            if (dyn.ndim == 1) {
                zero_elements(dyn, lo, std::min(hi, dyn.dim(0)));
            } else {
                zero_rows(dyn, lo, std::min(hi, dyn.dim(0)));
            }
        }
        if (op.out.expand_scales && op.in.expert_scales)
            zero_elements(*op.out.expand_scales, lo, std::min(hi, op.out.expand_scales->dim(0)));
        if (op.out.assist_info)
            zero_elements(
                *op.out.assist_info, 3 * lo, std::min(3 * hi, op.out.assist_info->dim(0)));
        if (op.out.expand_extra)
            zero_rows(*op.out.expand_extra, lo, std::min(hi, op.out.expand_extra->dim(0)));
    };
    int64_t before = 0;
    for (int64_t e = 0; e < local; ++e) {
        const int64_t end = load1<int32_t>(op.out.ep_recv_counts, (e + 1) * world - 1);
        zero(e * region + (end - before), (e + 1) * region);
        before = end;
    }
    zero(local * region, op.out.expand_x.dim(0));  // each tensor up to its own end
}

// SPEC-style tails (docs/contract.md §3): zero up to each tensor's end when zero padding is
// asked for; untouched otherwise.
void zero_tails(const DispatchOp& op, int64_t own_rows, int64_t used, bool streaming) {
    if (op.config.expert_padded()) return zero_padded_gaps(op, streaming);
    const TensorView& expand_x = op.out.expand_x;
    zero_rows(expand_x, used, expand_x.dim(0), streaming);
    if (op.format.makes_scales()) {
        const TensorView& dyn = *op.out.dynamic_scales;
        if (dyn.ndim == 1) {
            zero_elements(dyn, used, dyn.dim(0));
        } else {
            zero_rows(dyn, used, dyn.dim(0));
        }
    }
    if (op.out.expand_scales && op.in.expert_scales)
        zero_elements(*op.out.expand_scales, own_rows, op.out.expand_scales->dim(0));
    if (op.config.v2() && op.out.assist_info)
        zero_elements(*op.out.assist_info, 3 * own_rows, op.out.assist_info->dim(0));
    if (op.out.expand_extra) zero_rows(*op.out.expand_extra, used, op.out.expand_extra->dim(0));
}

}  // namespace

Status move_rows(const DispatchOp& op,
                 const Topology& topo,
                 const CallRounds& rounds,
                 DispatchScratch& s) {
    const int64_t rank = op.config.ep_rank_id;
    build_layout(topo, rank, s.own_sources, &s.own_layout);
    const int64_t own_rows = s.own_layout.total_rows;
    int64_t peer_rows = 0;
    int64_t rows_all = rows_sent_by_group(topo, op.top_k, s.own_sources);
    if (rounds.has_peer()) {
        build_layout(topo, rank, s.peer_sources, &s.peer_layout);
        peer_rows = s.peer_layout.total_rows;
        rows_all += rows_sent_by_group(topo, op.top_k, s.peer_sources);
    }
    const TensorView* scales_out =
        op.format.makes_scales() && op.out.dynamic_scales ? &*op.out.dynamic_scales : nullptr;
    for (const auto* group : {&s.own_sources, &s.peer_sources}) {
        if (group == &s.peer_sources && !rounds.has_peer()) break;
        for (std::size_t r = 0; r < group->size(); ++r) {
            if (!staged_fits((*group)[r], scales_out))
                return {Code::kRuntime,
                        "the staged rows of rank " + std::to_string(r) +
                            " must have this rank's row and scale layout, got another"};
        }
    }
    const int64_t max_bs = op.config.max_bs(op.num_tokens);
    const int64_t capacity = capacity_of(op.config, rank, max_bs, op.top_k);
    if (own_rows > capacity || peer_rows > capacity ||
        own_rows + peer_rows > op.out.expand_x.dim(0)) {
        return {Code::kRuntime,
                "rows received by rank " + std::to_string(rank) + " of '" + rounds.ep_name() +
                    "' must be at most A = " + std::to_string(capacity) + " per TP half, got " +
                    std::to_string(own_rows) + " and " + std::to_string(peer_rows) +
                    " (the senders' plans disagree with their counts)"};
    }
    const int64_t used = own_rows + peer_rows;
    const TensorView& expand_x = op.out.expand_x;
    const int64_t row_bytes = expand_x.dim(1) * static_cast<int64_t>(dtype_size(expand_x.dtype));
    // Bytes all ranks write in this call (with padding, every rank's tail too): past the shared
    // cache, plain stores would only evict what the next stage reads.
    int64_t bytes_all = rows_all * row_bytes;
    if (op.zero_padding) bytes_all += (expand_x.dim(0) - used) * row_bytes * topo.world_size;
    const bool streaming = bytes_all >= static_cast<int64_t>(util::kStreamingThresholdBytes);

    RowWriter writer(op.format,
                     op.hidden,
                     {expand_x, op.format.makes_scales() ? op.out.dynamic_scales : std::nullopt},
                     streaming);
    Fill{op, topo, writer, /*own=*/true}.group(s.own_sources, s.own_layout, 0);
    if (rounds.has_peer())
        Fill{op, topo, writer, /*own=*/false}.group(s.peer_sources, s.peer_layout, own_rows);
    if (!op.config.v2()) {  // V2 has no expandIdx (assistInfo instead)
        for (int64_t i = 0; i < op.num_tokens * op.top_k; ++i)
            store1<int32_t>(op.out.expand_idx, i, s.plan.expand_idx[static_cast<std::size_t>(i)]);
    }
    write_counts(op, topo, s, own_rows, peer_rows, rounds.has_peer());
    if (op.zero_padding) zero_tails(op, own_rows, used, streaming);  // (padded: reads the counts)
    if (streaming) util::streaming_fence();  // streaming stores land before we depart
    return Status::Ok();
}

}  // namespace moedist::core
