// Dispatch, second phase: plan → exchange round → single copy → completion round.
//
// expandX of a MoE rank with L local experts (receiver's view), T == 2:
//
//   row 0 ┌──────────────────────────────┐
//         │ e=0: src 0 rows, in src 0's flattened (token,k) order
//         │      src 1 rows …  src W−1 rows
//         │ e=1: src 0 … src W−1      (block e·W+src ends at epRecvCounts[e·W+src])
//         │ …
//   own   ├──────────────────────────────┤
//         │ the TP peer's own rows, in the peer's order (its epRecvCounts verbatim after mine)
//   own+peer ├───────────────────────────┤
//         │ tail up to dim 0: untouched (zero bytes with zero padding)
//         └──────────────────────────────┘
//
// A shared rank has L = 1 and its blocks are by source: its own tokens first (src = itself,
// since no other shared rank sends to it), then each MoE rank's chunk in token order.
//
// Every row is written once, by the receiver, straight from the sender's x (quantized on the
// way when the mode asks) or, when the quantization does not depend on the expert, from the
// rows the sender quantized once before arriving; the TP peer block is filled the same way from
// the peer's EP group. What the receiver reads of a sender it reaches through the sender's
// record: the plan, x and scales as regions its endpoint maps (SourceView).
#include <algorithm>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "core/call_rounds.hpp"
#include "core/ops.hpp"
#include "core/plan.hpp"
#include "core/records.hpp"
#include "core/scratch.hpp"
#include "core/remote.hpp"
#include "core/row_writer.hpp"
#include "core/tensor_access.hpp"
#include "core/views.hpp"
#include "util/float_env.hpp"
#include "util/log.hpp"
#include "util/memory_ops.hpp"

namespace moedist::core {
namespace {

struct Scratch {
    SendPlan plan;
    std::vector<std::vector<int32_t>> own_plans;   // senders' plans, copied out of their memory
    std::vector<std::vector<int32_t>> peer_plans;
    ReceiveLayout own_layout;
    ReceiveLayout peer_layout;
    std::vector<SourceView> own_sources;
    std::vector<SourceView> peer_sources;
};

// Per rank thread; reused across calls, so a steady shape allocates nothing after its first call.
Scratch& scratch() {
    thread_local Scratch instance;
    return instance;
}

Topology topology_of(const MoeConfig& config) {
    return {config.ep_world_size,
            config.shared_expert_rank_num,
            config.moe_expert_num,
            config.local_moe_expert_num()};
}

int64_t capacity_of(const MoeConfig& config, int64_t rank, int64_t max_bs, int64_t top_k) {
    MoeConfig at = config;
    at.ep_rank_id = rank;
    return at.capacity_rows(max_bs, top_k);
}

// The sender's staging: BS rows in expandX's dtype, then their scales in dynamicScales' row
// layout, in this rank's exposable scratch.
struct Staging {
    TensorView rows;
    std::optional<TensorView> scales;
};

Staging stage_rows(const DispatchOp& op, transport::Transport& endpoint, Status* status) {
    const TensorView& out = op.out.expand_x;
    const int64_t bs = op.num_tokens;
    const int64_t hidden = op.hidden;
    const std::size_t row_bytes = static_cast<std::size_t>(hidden) * dtype_size(out.dtype);
    const std::size_t rows_bytes = (static_cast<std::size_t>(bs) * row_bytes + 63) / 64 * 64;
    int64_t columns = 0;
    DType scale_dtype = DType::kFloat32;
    if (op.out.dynamic_scales && op.format.makes_scales()) {
        const TensorView& dyn = *op.out.dynamic_scales;
        columns = dyn.ndim == 2 ? dyn.dim(1) : 1;
        scale_dtype = dyn.dtype;
    }
    const std::size_t scale_bytes =
        static_cast<std::size_t>(bs * std::max<int64_t>(columns, 1)) * dtype_size(scale_dtype);
    auto* base = static_cast<std::byte*>(
        endpoint.scratch(kScratchStaged, rows_bytes + scale_bytes));
    Staging staging;
    if (base == nullptr) {
        *status = {Code::kRuntime,
                   "the staged rows must find " + std::to_string(rows_bytes + scale_bytes) +
                       " bytes of shared memory, got none"};
        return staging;
    }
    staging.rows = TensorView::contiguous(base, out.dtype, {bs, hidden});
    if (columns > 0) {
        const auto& dyn = *op.out.dynamic_scales;
        staging.scales = dyn.ndim == 2
                             ? TensorView::contiguous(base + rows_bytes, scale_dtype, {bs, columns})
                             : TensorView::contiguous(base + rows_bytes, scale_dtype, {bs});
    }
    RowWriter writer(op.format, hidden, {staging.rows, staging.scales}, false);
    RowSource src{op.in.x, op.in.scales ? *op.in.scales : TensorView{}};
    for (int64_t t = 0; t < bs; ++t) writer.write(src, t, t, 0);
    return staging;
}

// The plan's arrays a receiver reads (expert_begin, entries_by_expert) in exposable scratch.
Status publish_plan(const SendPlan& plan, transport::Transport& endpoint, DispatchRecord* rec) {
    const std::size_t begin_count = plan.expert_begin.size();
    const std::size_t entry_count = plan.entries_by_expert.size();
    const std::size_t bytes = (begin_count + entry_count) * sizeof(int32_t);
    auto* arrays = static_cast<int32_t*>(endpoint.scratch(kScratchPlan, bytes));
    if (arrays == nullptr) {
        return {Code::kRuntime,
                "the send plan must find " + std::to_string(bytes) +
                    " bytes of shared memory, got none"};
    }
    std::memcpy(arrays, plan.expert_begin.data(), begin_count * sizeof(int32_t));
    if (entry_count > 0) {  // BS = 0: no entries (and no array to copy from)
        std::memcpy(
            arrays + begin_count, plan.entries_by_expert.data(), entry_count * sizeof(int32_t));
    }
    rec->top_k = plan.top_k;
    rec->num_experts = plan.num_experts;
    rec->bad_id = plan.has_bad_id ? 1 : 0;
    rec->bad_value = static_cast<int32_t>(plan.bad_id);
    rec->bad_token = plan.bad_token;
    rec->bad_k = plan.bad_k;
    return endpoint.expose(arrays, bytes, kScratchPlan, &rec->plan);
}

// Every sender of a group, as this receiver reads it (after the first round): each record checked
// against what this rank knows (records.hpp; the same verdict on every rank, returned), each
// sender's plan copied out of its memory and checked and every tensor it names mapped (failures
// there are this rank's alone: *local, reported after the collective steps). A sender on another
// node comes over later (remote.hpp).
template <class Records>
Status read_sources(const Records& records,
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
            return {Code::kRuntime,
                    "the dispatch record of rank " + std::to_string(r) + " of '" + group + "' " + why};
        };
        if (std::string why = check_dispatch_record(rec, r, bounds); !why.empty()) return failed(why);
        SourceView& v = (*sources)[static_cast<std::size_t>(r)];
        v = SourceView{};
        v.num_tokens = rec.num_tokens;
        if (memory.node_of(rank) != my_node || !local->ok()) continue;
        Status& first = *local;
        auto unreachable = [&](const char* what) -> Status {
            if (std::string why = memory.gone(rank); !why.empty()) return {Code::kRuntime, why};
            return {Code::kRuntime,
                    std::string("the ") + what + " of rank " + std::to_string(r) + " of '" + group +
                        "' must be readable by its receivers, got memory this process cannot map"};
        };
        const auto* arrays = reinterpret_cast<const int32_t*>(memory.map(rank, rec.plan));
        if (arrays == nullptr) {
            first = unreachable("plan");
            continue;
        }
        auto& plan = (*plans)[static_cast<std::size_t>(r)];
        plan.assign(arrays, arrays + rec.plan.bytes / sizeof(int32_t));
        if (std::string why = check_plan_arrays(plan.data(), bounds.experts, rec.num_tokens, rec.top_k);
            !why.empty()) {
            first = failed(why);
            continue;
        }
        v.plan = PlanView{plan.data(),
                          plan.data() + rec.num_experts + 1,
                          rec.num_tokens,
                          rec.top_k,
                          rec.num_experts};
        auto mapped = [&](const TensorRef& ref, TensorView* out, const char* what) -> Status {
            *out = view_of(memory, rank, ref);
            if (ref.present() && !ref.region.empty() && out->data == nullptr) return unreachable(what);
            return Status::Ok();
        };
        TensorView staged_scales;
        if (Status s = mapped(rec.x, &v.row.x, "x"); !s.ok()) {
            first = s;
        } else if (Status s2 = mapped(rec.scales, &v.row.scales, "scales"); !s2.ok()) {
            first = s2;
        } else if (Status s3 = mapped(rec.expert_scales, &v.expert_scales, "expertScales"); !s3.ok()) {
            first = s3;
        } else if (Status s4 = mapped(rec.staged_rows, &v.staged_rows, "staged rows"); !s4.ok()) {
            first = s4;
        } else if (Status s5 = mapped(rec.staged_scales, &staged_scales, "staged scales"); !s5.ok()) {
            first = s5;
        } else if (rec.staged_scales.present()) {
            v.staged_scales = staged_scales;
        }
    }
    return Status::Ok();
}

// Run-time checks over one EP group's records: ids in range, BS agreement when globalBs = 0,
// no receiver over its capacity A. Identical on every rank that looks at the same records.
template <class Records>
Status check_group(const DispatchOp& op,
                   const Topology& topo,
                   const Records& records,
                   const std::vector<SourceView>& sources,
                   int64_t group_bs,
                   const std::string& group_name) {
    const int64_t world = topo.world_size;
    for (int64_t r = 0; r < world; ++r) {
        const DispatchRecord& rec = records(r);
        if (rec.bad_id != 0) {
            return {Code::kRuntime,
                    "expertIds[" + std::to_string(rec.bad_token) + "][" +
                        std::to_string(rec.bad_k) + "] on rank " + std::to_string(r) + " of '" +
                        group_name + "' must be in [0, " + std::to_string(topo.moe_expert_num) +
                        "), got " + std::to_string(rec.bad_value)};
        }
        if (op.config.global_bs == 0 && rec.num_tokens != group_bs) {
            return {Code::kRuntime,
                    "BS must be equal on every rank when globalBs = 0, got " +
                        std::to_string(group_bs) + " and " + std::to_string(rec.num_tokens) +
                        " on rank " + std::to_string(r) + " of '" + group_name + "'"};
        }
    }
    const int64_t max_bs = op.config.global_bs == 0 ? group_bs : op.config.global_bs / world;
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

// Fills the rows this rank (EP rank `dst`) receives from one EP group, starting at `row_base`;
// with `own`, also their expandScales entries.
void fill(const DispatchOp& op,
          const Topology& topo,
          const std::vector<SourceView>& sources,
          const ReceiveLayout& layout,
          int64_t row_base,
          bool own,
          RowWriter& writer) {
    const int64_t world = topo.world_size;
    const int64_t dst = op.config.ep_rank_id;
    const bool write_expand_scales =
        own && op.out.expand_scales.has_value() && op.in.expert_scales.has_value();
    auto put = [&](const SourceView& src, int64_t token, int64_t row, int64_t scale_row) {
        if (src.staged_rows.data != nullptr) {
            writer.copy_staged(src.staged_rows, src.staged_scales, token, row);
        } else {
            writer.write(src.row, token, row, scale_row);
        }
    };
    for (int64_t le = 0; le < topo.local_experts(dst); ++le) {
        for (int64_t s = 0; s < world; ++s) {
            const SourceView& src = sources[static_cast<std::size_t>(s)];
            int64_t row = row_base + layout.block_begin(le * world + s);
            if (topo.is_shared(dst)) {
                TokenRange tokens{0, 0};
                if (s == dst) {
                    tokens = {0, src.num_tokens};
                } else if (!topo.is_shared(s)) {
                    tokens = shared_chunk(s, src.num_tokens, topo.shared_rank_num, dst);
                }
                for (int64_t t = tokens.lo; t < tokens.hi; ++t, ++row) {
                    put(src, src.row_of(t), row, /*scale_row=*/0);
                    if (write_expand_scales) store1<float>(*op.out.expand_scales, row, 1.0f);
                }
                continue;
            }
            const int64_t expert = topo.first_expert(dst) + le;
            const PlanView& plan = src.plan;
            const int64_t scale_row = expert + (topo.shared_rank_num > 0 ? 1 : 0);
            for (int64_t i = plan.expert_begin[expert]; i < plan.expert_begin[expert + 1];
                 ++i, ++row) {
                const int64_t flat = plan.entries_by_expert[i];
                const int64_t token = flat / plan.top_k;
                put(src, token, row, scale_row);
                if (write_expand_scales) {
                    const float weight = load2<float>(src.expert_scales, token, flat % plan.top_k);
                    store1<float>(*op.out.expand_scales, row, weight);
                }
            }
        }
    }
}

void write_counts(const DispatchOp& op,
                  const Topology& topo,
                  const Scratch& s,
                  int64_t own_rows,
                  int64_t peer_rows) {
    const int64_t rank = op.config.ep_rank_id;
    const int64_t blocks = topo.world_size * topo.local_experts(rank);
    for (int64_t i = 0; i < blocks; ++i) {
        store1<int32_t>(op.out.ep_recv_counts,
                        i,
                        static_cast<int32_t>(s.own_layout.block_end[static_cast<std::size_t>(i)]));
    }
    if (op.tp) {
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

// Rows every rank of a group receives in this call (each sender's entries, plus one shared row
// per token when S > 0), for the streaming decision: the same on every rank.
int64_t rows_sent_by_group(const Topology& topo,
                           int64_t top_k,
                           const std::vector<SourceView>& sources) {
    int64_t rows = 0;
    for (const SourceView& v : sources)
        rows += v.num_tokens * (top_k + (topo.shared_rank_num > 0 ? 1 : 0));
    return rows;
}

// The single copy and every output; runs only after a successful verdict. The layouts come from
// the senders' plans (checked copies); rows past this rank's capacity are never written.
Status move_rows(const DispatchOp& op, const Topology& topo, const CallRounds& rounds, Scratch& s) {
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
    const TensorView* scales_out = op.format.makes_scales() && op.out.dynamic_scales
                                       ? &*op.out.dynamic_scales
                                       : nullptr;
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
    fill(op, topo, s.own_sources, s.own_layout, 0, /*own=*/true, writer);
    if (rounds.has_peer()) fill(op, topo, s.peer_sources, s.peer_layout, own_rows, false, writer);

    // docs/contract.md §3 tails: untouched, or zero up to each tensor's end when zero padding is asked for.
    if (op.zero_padding) {
        zero_rows(expand_x, used, expand_x.dim(0), streaming);
        if (op.format.makes_scales()) {
            const TensorView& dyn = *op.out.dynamic_scales;
            if (dyn.ndim == 1) {
                zero_elements(dyn, used, dyn.dim(0));
            } else {
                zero_rows(dyn, used, dyn.dim(0));
            }
        }
        if (op.out.expand_scales && op.in.expert_scales) {
            zero_elements(*op.out.expand_scales, own_rows, op.out.expand_scales->dim(0));
        }
    }
    for (int64_t i = 0; i < op.num_tokens * op.top_k; ++i) {
        store1<int32_t>(op.out.expand_idx, i, s.plan.expand_idx[static_cast<std::size_t>(i)]);
    }
    write_counts(op, topo, s, own_rows, peer_rows);
    if (streaming) util::streaming_fence();  // streaming stores land before we depart
    return Status::Ok();
}

// Everything this rank publishes: its plan, x and scales (and staged rows) for its receivers.
Status publish_inputs(const DispatchOp& op, transport::Transport& endpoint, DispatchRecord* mine) {
    Scratch& s = scratch();
    mine->ep_rank = op.config.ep_rank_id;
    mine->num_tokens = op.num_tokens;
    if (Status st = endpoint.broken_status(); !st.ok()) return st;
    if (Status st = publish_plan(s.plan, endpoint, mine); !st.ok()) return st;
    const Topology topo = topology_of(op.config);
    const int64_t world = topo.world_size;
    if (world <= DispatchRecord::kRecordedRanks) {
        for (int64_t dst = 0; dst < world; ++dst) {
            mine->rows_to[dst] = static_cast<int32_t>(
                rows_to_rank(topo, dst, op.config.ep_rank_id, op.num_tokens, s.plan));
        }
    }
    if (endpoint.node_count() > 1) {
        if (world > DispatchRecord::kRecordedRanks ||
            endpoint.node_count() > DispatchRecord::kMaxNodes) {
            return {Code::kRuntime,
                    "a group across nodes must have at most " +
                        std::to_string(DispatchRecord::kRecordedRanks) + " ranks on at most " +
                        std::to_string(DispatchRecord::kMaxNodes) + " nodes, got " +
                        std::to_string(world) + " ranks on " +
                        std::to_string(endpoint.node_count())};
        }
        std::vector<std::vector<int32_t>> needed;
        tokens_for_nodes(op, topo, endpoint, &needed);
        for (std::size_t n = 0; n < needed.size(); ++n)
            mine->tokens_to_node[n] = static_cast<int32_t>(needed[n].size());
    }
    if (Status st = publish_tensor(endpoint, op.in.x, kScratchStageX, &mine->x);
        !st.ok())
        return st;
    if (op.in.scales) {
        if (Status st =
                publish_tensor(endpoint, *op.in.scales, kScratchStageAux, &mine->scales);
            !st.ok())
            return st;
    }
    if (op.in.expert_scales) {
        if (Status st = publish_tensor(
                endpoint, *op.in.expert_scales, kScratchStageAux2, &mine->expert_scales);
            !st.ok())
            return st;
    }
    if (op.format.staged_once() && !s.plan.has_bad_id) {
        Status staged_status = Status::Ok();
        const Staging staged = stage_rows(op, endpoint, &staged_status);
        if (!staged_status.ok()) return staged_status;
        if (Status st = publish_tensor(
                endpoint, staged.rows, kScratchStaged, &mine->staged_rows);
            !st.ok())
            return st;
        if (staged.scales) {
            if (Status st = publish_tensor(
                    endpoint, *staged.scales, kScratchStaged, &mine->staged_scales);
                !st.ok())
                return st;
        }
    }
    return Status::Ok();
}

}  // namespace

Status run_dispatch(const DispatchOp& op) {
    util::FloatEnvironment float_env;
    transport::TimeoutScope timeout(op.config.timeout_ms.value_or(0));
    const auto started = transport::Clock::now();
    Scratch& s = scratch();
    const Topology topo = topology_of(op.config);
    const TensorView& ids = op.in.expert_ids;
    build_send_plan(static_cast<const int32_t*>(ids.data),
                    ids.stride(0),
                    ids.stride(1),
                    op.num_tokens,
                    op.top_k,
                    op.config.moe_expert_num,
                    &s.plan);
    // Every buffer the move needs is sized before arriving: after it nothing allocates.
    s.own_layout.block_end.resize(
        static_cast<std::size_t>(topo.world_size * topo.local_experts(op.config.ep_rank_id)));
    s.peer_layout.block_end.resize(s.own_layout.block_end.size());
    s.own_sources.resize(static_cast<std::size_t>(topo.world_size));
    s.peer_sources.resize(static_cast<std::size_t>(topo.world_size));

    CallRounds rounds(op.ep, op.tp);
    DispatchRecord mine;
    const bool has_expert_scales = op.in.expert_scales.has_value();
    mine.header.attrs = make_digest({1,
                                     &op.config,
                                     op.top_k,
                                     op.hidden,
                                     op.in.x.dtype,
                                     op.out.expand_x.dtype,
                                     has_expert_scales});
    if (!op.pre_error.ok()) {
        // Every rank fails in check_headers; nothing of mine is exposed, nobody reads it.
        mine.header.set_error(op.pre_error);
    } else if (Status published = publish_inputs(op, rounds.endpoint(), &mine); !published.ok()) {
        mine.header.set_error(published);
    }

    Status verdict = rounds.begin(&mine.header, sizeof(mine));
    try {  // once arrived, every path goes through finish()
        if (verdict.ok()) verdict = rounds.check_headers();
        auto own = [&](int64_t r) -> const DispatchRecord& {
            return rounds.own<DispatchRecord>(r);
        };
        auto peer = [&](int64_t r) -> const DispatchRecord& {
            return rounds.peer<DispatchRecord>(r);
        };
        RecordBounds bounds;
        bounds.world = topo.world_size;
        bounds.experts = topo.moe_expert_num;
        bounds.top_k = op.top_k;
        bounds.hidden = op.hidden;
        bounds.nodes = rounds.own_memory().node_count();
        bounds.x_dtype = op.in.x.dtype;
        bounds.expand_dtype = op.out.expand_x.dtype;
        Status local = Status::Ok();  // this rank's own failures, reported after the exchange
        if (verdict.ok()) {
            verdict = read_sources(own,
                                   bounds,
                                   rounds.own_memory(),
                                   rounds.ep_name(),
                                   &s.own_sources,
                                   &s.own_plans,
                                   &local);
        }
        if (verdict.ok() && rounds.has_peer()) {
            verdict = read_sources(peer,
                                   bounds,
                                   rounds.peer_memory(),
                                   rounds.peer_name(),
                                   &s.peer_sources,
                                   &s.peer_plans,
                                   &local);
        }
        // With globalBs = 0 every rank of both EP groups must have one BS: rank 0's of my group.
        const int64_t group_bs = verdict.ok() ? own(0).num_tokens : 0;
        if (verdict.ok())
            verdict = check_group(op, topo, own, s.own_sources, group_bs, rounds.ep_name());
        if (verdict.ok() && rounds.has_peer()) {
            verdict = check_group(op, topo, peer, s.peer_sources, group_bs, rounds.peer_name());
        }
        uint64_t node_call = 0;
        bool node_round = false;
        if (verdict.ok() && rounds.own_memory().node_count() > 1) {
            // Ranks on other nodes: their rows come over once per node (remote.hpp).
            std::vector<const DispatchRecord*> records;
            for (int64_t r = 0; r < topo.world_size; ++r) records.push_back(&own(r));
            verdict = bring_remote_sources(
                op, topo, rounds.own_memory(), records, &s.own_sources, &node_call);
            node_round = rounds.own_memory().node_group() != nullptr && verdict.ok();
        }
        if (verdict.ok()) verdict = local;
        if (verdict.ok()) verdict = move_rows(op, topo, rounds, s);
        if (node_round) {  // my node's peers have read what I received for them
            transport::Transport& node = *rounds.own_memory().node_group();
            node.finish(node_call, verdict.raw_code(), verdict.message());
            transport::Flag flag;
            if (Status st = node.wait_finished(node_call, transport::call_deadline(), &flag);
                verdict.ok() && !st.ok())
                verdict = st;
        }
    } catch (const std::exception& e) {
        verdict = {Code::kRuntime, std::string("dispatch must not fail inside, got: ") + e.what()};
    } catch (...) {
        verdict = {Code::kRuntime, "dispatch must not fail inside, got an unknown exception"};
    }
    Status result = rounds.finish(verdict);
    MOEDIST_LOG(
        kInfo,
        "dispatch '{}' rank {}: BS {}, H {}, K {}, quantMode {}, {} rows received, {:.3f} "
        "ms: {}",
        rounds.ep_name(),
        op.config.ep_rank_id,
        op.num_tokens,
        op.hidden,
        op.top_k,
        op.config.quant_mode,
        result.ok() ? s.own_layout.total_rows + (rounds.has_peer() ? s.peer_layout.total_rows : 0)
                    : 0,
        std::chrono::duration<double, std::milli>(transport::Clock::now() - started).count(),
        result.ok() ? "ok" : result.message());
    return result;
}

}  // namespace moedist::core
