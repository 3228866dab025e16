// Combine, second phase: exchange round → each source rank pulls and reduces its own tokens →
// completion round.
//
// For token t of source rank `me` and entry k with expert e on EP rank d (local expert le):
//   row   = begin(d, le·W + me) + expandIdx[t·K+k]      begin from d's epSendCounts (running total)
//   value = f32(d.expandX[row])                                        T == 1
//         = f32(rne(f32(d.expandX[row]) + f32(P.expandX[P.own + row])))  T == 2, P = d's TP peer
//   (commQuantMode 2: value goes through the int8 round trip of docs/contract.md §4.2)
//   acc   = acc + value · expertScales[t,k]   for k = 0..K−1, then + shared value when S > 0
//   x[t]  = rne(acc)
// The shared row of t lives on shared rank s (chunk rule; s = me on a shared rank) at
// begin(s, me) + (t − lo). Every index is checked against the owner's counts before any read.
#include <algorithm>
#include <string>
#include <vector>

#include "core/call_rounds.hpp"
#include "core/ops.hpp"
#include "core/plan.hpp"
#include "core/records.hpp"
#include "core/scratch.hpp"
#include "core/remote.hpp"
#include "core/tensor_access.hpp"
#include "core/views.hpp"
#include "quant/combine_rows.hpp"
#include "quant/row_kernels.hpp"
#include "util/float_env.hpp"

namespace moedist::core {
namespace {

struct Scratch {
    std::vector<OwnerView> own_owners;
    std::vector<std::vector<int32_t>> own_counts;   // owners' counts, copied out of their memory
    std::vector<std::vector<int32_t>> peer_counts;
    std::vector<int32_t> remote_counts;  // counts of the views of owners on other nodes
    std::vector<OwnerView> peer_owners;
    std::vector<float> acc;
    std::vector<float> row;
    std::vector<float> peer_row;
    std::vector<const uint16_t*> rows;  // one token's K rows (the register-blocked path)
    std::vector<float> weights;
};

Scratch& scratch() {
    thread_local Scratch instance;
    return instance;
}

// Where one returned row lives: on rank `owner` of my EP group at `row` (and, T == 2, on the
// owner's TP peer at `peer_row`).
struct RowRef {
    int64_t owner = 0;
    int64_t row = 0;
    int64_t peer_row = 0;
};

class RowLocator {
public:
    RowLocator(const CombineOp& op, const CallRounds& rounds, const Scratch& s)
        : op_(op), rounds_(rounds), own_(s.own_owners), peer_(s.peer_owners) {}

    // Locates block `block` of `owner`'s epSendCounts, row `index` inside it; false when any index
    // is outside the owner's (or its TP peer's) rows.
    bool locate(int64_t owner, int64_t block, int64_t index, RowRef* ref) const {
        const OwnerView& rec = own_[static_cast<std::size_t>(owner)];
        const int64_t world = op_.config.ep_world_size;
        const int64_t blocks =
            world *
            (owner < op_.config.shared_expert_rank_num ? 1 : op_.config.local_moe_expert_num());
        if (block < 0 || block >= blocks || rec.ep_send_counts.dim(0) < blocks ||
            rec.ep_send_counts.data == nullptr || rec.expand_x.data == nullptr) {
            return false;
        }
        const int64_t begin = block == 0 ? 0 : load1<int32_t>(rec.ep_send_counts, block - 1);
        const int64_t end = load1<int32_t>(rec.ep_send_counts, block);
        int64_t own_rows = load1<int32_t>(rec.ep_send_counts, blocks - 1);
        if (rounds_.has_peer()) own_rows = load1<int32_t>(rec.tp_send_counts, rec.tp_rank);
        if (begin < 0 || index < 0 || begin + index >= end || end > own_rows ||
            own_rows > rec.expand_x.dim(0)) {
            return false;
        }
        ref->owner = owner;
        ref->row = begin + index;
        if (rounds_.has_peer()) {
            const OwnerView& peer = peer_[static_cast<std::size_t>(owner)];
            if (peer.tp_send_counts.data == nullptr || peer.expand_x.data == nullptr) return false;
            const int64_t peer_own = load1<int32_t>(peer.tp_send_counts, peer.tp_rank);
            const int64_t peer_has = load1<int32_t>(peer.tp_send_counts, 1 - peer.tp_rank);
            if (peer_own < 0 || ref->row >= peer_has ||
                peer_own + peer_has > peer.expand_x.dim(0)) {
                return false;
            }
            ref->peer_row = peer_own + ref->row;
        }
        return true;
    }

    // Without TP and comm quantization a returned row is used as it is, so it can be read and
    // accumulated in one pass.
    bool direct() const { return !rounds_.has_peer() && op_.config.comm_quant_mode == 0; }

    // The row of `ref` in the owner's expandX, and whether its columns are contiguous.
    const uint16_t* row_pointer(const RowRef& ref) const {
        const OwnerView& rec = own_[static_cast<std::size_t>(ref.owner)];
        return reinterpret_cast<const uint16_t*>(element_ptr(rec.expand_x, ref.row, 0));
    }
    bool contiguous_rows() const {
        for (int64_t r = 0; r < op_.config.ep_world_size; ++r) {
            if (own_[static_cast<std::size_t>(r)].expand_x.stride(1) != 1) return false;
        }
        return true;
    }

    // acc += f32(row of `ref`) * weight, straight from the owner's expandX (direct() only).
    void accumulate_direct(const RowRef& ref, float weight, float* acc) const {
        const OwnerView& rec = own_[static_cast<std::size_t>(ref.owner)];
        quant::accumulate_weighted_from(rec.expand_x.dtype,
                                        element_ptr(rec.expand_x, ref.row, 0),
                                        rec.expand_x.stride(1),
                                        weight,
                                        acc,
                                        op_.hidden);
    }

    // Loads the returned value of `ref` into `row` (binary32), TP-reduced and comm-quantized.
    void load(const RowRef& ref, float* row, float* peer_row) const {
        const OwnerView& rec = own_[static_cast<std::size_t>(ref.owner)];
        const DType dtype = rec.expand_x.dtype;
        const int64_t hidden = op_.hidden;
        quant::load_row_f32(
            dtype, element_ptr(rec.expand_x, ref.row, 0), rec.expand_x.stride(1), row, hidden);
        if (rounds_.has_peer()) {
            const OwnerView& peer = peer_[static_cast<std::size_t>(ref.owner)];
            quant::load_row_f32(dtype,
                                element_ptr(peer.expand_x, ref.peer_row, 0),
                                peer.expand_x.stride(1),
                                peer_row,
                                hidden);
            quant::add_round_row(dtype, row, peer_row, hidden);
        }
        if (op_.config.comm_quant_mode == 2) quant::comm_quant_round_trip(dtype, row, hidden);
    }

private:
    const CombineOp& op_;
    const CallRounds& rounds_;
    const std::vector<OwnerView>& own_;
    const std::vector<OwnerView>& peer_;
};

// Finds every row of my tokens; false (and `why`) on the first index out of range.
// Where the rows of this rank's token t live (expert entries and the shared row).
class TokenRows {
public:
    TokenRows(const CombineOp& op, const RowLocator& locator)
        : op_(op),
          locator_(locator),
          topo_{op.config.ep_world_size,
                op.config.shared_expert_rank_num,
                op.config.moe_expert_num,
                op.config.local_moe_expert_num()},
          me_(op.config.ep_rank_id) {}

    // Entry (t, k): its expert's rank, block local_expert·W + me, row expandIdx[t·K+k].
    bool entry(int64_t t, int64_t k, RowRef* ref, int64_t* expert, int64_t* index) const {
        *expert = load2<int32_t>(op_.in.expert_ids, t, k);
        *index = load1<int32_t>(op_.in.expand_idx, t * op_.top_k + k);
        if (*expert < 0 || *expert >= topo_.moe_expert_num) return false;
        return locator_.locate(topo_.rank_of_expert(*expert),
                               topo_.local_index(*expert) * topo_.world_size + me_,
                               *index,
                               ref);
    }

    // The shared row of t (S > 0): on a shared rank its own row t, else row t − lo of the chunk
    // on the shared rank the chunk rule names.
    bool shared(int64_t t, RowRef* ref, int64_t* shared_rank) const {
        const int64_t S = topo_.shared_rank_num;
        *shared_rank = topo_.is_shared(me_) ? me_ : shared_rank_of_token(me_, op_.num_tokens, S, t);
        const int64_t lo =
            topo_.is_shared(me_) ? 0 : shared_chunk(me_, op_.num_tokens, S, *shared_rank).lo;
        return locator_.locate(*shared_rank, me_, t - lo, ref);
    }

    bool has_shared() const { return topo_.shared_rank_num > 0; }

private:
    const CombineOp& op_;
    const RowLocator& locator_;
    Topology topo_;
    int64_t me_;
};

// Finds every row of my tokens; false (and `why`) on the first index out of range.
bool locate_all(const CombineOp& op, const TokenRows& rows, std::string* why) {
    RowRef ref;
    int64_t expert = 0, index = 0, shared_rank = 0;
    for (int64_t t = 0; t < op.num_tokens; ++t) {
        for (int64_t k = 0; k < op.top_k; ++k) {
            if (!rows.entry(t, k, &ref, &expert, &index)) {
                *why = "must name rows their experts' ranks received, got token " +
                       std::to_string(t) + ", k " + std::to_string(k) + ": expert " +
                       std::to_string(expert) + ", expandIdx " + std::to_string(index);
                return false;
            }
        }
        if (rows.has_shared() && !rows.shared(t, &ref, &shared_rank)) {
            *why = "must match shared rank " + std::to_string(shared_rank) +
                   "'s epSendCounts, got no row for token " + std::to_string(t);
            return false;
        }
    }
    return true;
}

// x[t] = rne(Σ_k row(t,k)·w[t,k] (+ shared row)) in binary32, k in order (docs/contract.md §4.3), with
// every element's accumulator in a register (quant/combine_rows) when the rows are used as they
// are (T == 1, commQuantMode 0) and contiguous.
bool reduce_tokens_in_registers(const CombineOp& op,
                                const RowLocator& locator,
                                const TokenRows& rows,
                                Scratch& s) {
    if (!locator.direct() || !quant::combine_rows_available() || op.x_out.stride(1) != 1 ||
        !locator.contiguous_rows()) {
        return false;
    }
    RowRef ref;
    int64_t expert = 0, index = 0, shared_rank = 0;
    for (int64_t t = 0; t < op.num_tokens; ++t) {
        for (int64_t k = 0; k < op.top_k; ++k) {
            rows.entry(t, k, &ref, &expert, &index);
            s.rows[static_cast<std::size_t>(k)] = locator.row_pointer(ref);
            s.weights[static_cast<std::size_t>(k)] = load2<float>(op.in.expert_scales, t, k);
        }
        const uint16_t* shared = nullptr;
        if (rows.has_shared()) {
            rows.shared(t, &ref, &shared_rank);
            shared = locator.row_pointer(ref);
        }
        quant::combine_rows(op.x_out.dtype,
                            s.rows.data(),
                            s.weights.data(),
                            op.top_k,
                            shared,
                            reinterpret_cast<uint16_t*>(element_ptr(op.x_out, t, 0)),
                            op.hidden);
    }
    return true;
}

void reduce_tokens(const CombineOp& op,
                   const RowLocator& locator,
                   const TokenRows& rows,
                   Scratch& s) {
    if (reduce_tokens_in_registers(op, locator, rows, s)) return;
    const int64_t hidden = op.hidden;
    RowRef ref;
    int64_t expert = 0, index = 0, shared_rank = 0;
    for (int64_t t = 0; t < op.num_tokens; ++t) {
        std::fill(s.acc.begin(), s.acc.end(), 0.0f);
        for (int64_t k = 0; k < op.top_k; ++k) {
            rows.entry(t, k, &ref, &expert, &index);
            const float weight = load2<float>(op.in.expert_scales, t, k);
            if (locator.direct()) {
                locator.accumulate_direct(ref, weight, s.acc.data());
            } else {
                locator.load(ref, s.row.data(), s.peer_row.data());
                quant::accumulate_weighted(s.acc.data(), s.row.data(), weight, hidden);
            }
        }
        if (rows.has_shared()) {
            rows.shared(t, &ref, &shared_rank);
            if (locator.direct()) {
                locator.accumulate_direct(ref, 1.0f, s.acc.data());  // fl32(v · 1) = v
            } else {
                locator.load(ref, s.row.data(), s.peer_row.data());
                quant::accumulate(s.acc.data(), s.row.data(), hidden);
            }
        }
        quant::store_row_f32(
            op.x_out.dtype, s.acc.data(), element_ptr(op.x_out, t, 0), op.x_out.stride(1), hidden);
    }
}

// Rows of my expandX its readers may touch: my own rows and (T == 2) my peer's, as my counts
// (dispatch's outputs) say; the region covers no more.
int64_t used_rows(const CombineOp& op) {
    const int64_t blocks = op.config.ep_world_size * op.config.local_expert_num();
    int64_t rows = load1<int32_t>(op.in.ep_send_counts, blocks - 1);
    if (op.tp) {
        rows = static_cast<int64_t>(load1<int32_t>(*op.in.tp_send_counts, 0)) +
               load1<int32_t>(*op.in.tp_send_counts, 1);
    }
    return std::clamp<int64_t>(rows, 0, op.in.expand_x.dim(0));
}

Status publish_inputs(const CombineOp& op, transport::Transport& endpoint, CombineRecord* mine) {
    mine->ep_rank = op.config.ep_rank_id;
    mine->num_tokens = op.num_tokens;
    mine->tp_rank = op.config.tp_rank_id;
    if (Status s = endpoint.broken_status(); !s.ok()) return s;
    // Only the rows readers may touch, so the region (and the view peers see) covers no more.
    TensorView used = op.in.expand_x;
    used.shape[0] = used_rows(op);
    if (Status s = publish_tensor(endpoint, used, kScratchStageX, &mine->expand_x);
        !s.ok())
        return s;
    if (Status s = publish_tensor(
            endpoint, op.in.ep_send_counts, kScratchStageAux, &mine->ep_send_counts);
        !s.ok())
        return s;
    if (op.in.tp_send_counts) {
        return publish_tensor(
            endpoint, *op.in.tp_send_counts, kScratchStageAux2, &mine->tp_send_counts);
    }
    return Status::Ok();
}

// Every owner of expert rows of a group, as this rank reads it: each record checked against what
// this rank knows (records.hpp; the same verdict on every rank, returned), its tensors mapped (a
// failure there is this rank's alone: *unreachable, reported after the collective steps; a dead
// owner is named as such), and its counts copied out of its memory, so they cannot change
// between the checks and the reads.
template <class Records>
Status read_owners(const Records& records,
                   const RecordBounds& bounds,
                   int64_t shared_ranks,
                   transport::Transport& memory,
                   const std::string& group,
                   std::vector<OwnerView>* owners,
                   std::vector<std::vector<int32_t>>* counts,
                   Status* unreachable) {
    const int64_t world = bounds.world;
    owners->resize(static_cast<std::size_t>(world));
    counts->resize(static_cast<std::size_t>(world));
    const int my_node = memory.node_of(memory.rank());
    for (int64_t r = 0; r < world; ++r) {
        const CombineRecord& rec = records(r);
        const int rank = static_cast<int>(r);
        if (std::string why = check_combine_record(rec, r, bounds); !why.empty()) {
            return {Code::kRuntime,
                    "the combine record of rank " + std::to_string(r) + " of '" + group + "' " + why};
        }
        OwnerView& v = (*owners)[static_cast<std::size_t>(r)];
        v = OwnerView{};
        v.tp_rank = rec.tp_rank;
        if (memory.node_of(rank) != my_node) continue;  // its rows come over (remote.hpp)
        v.expand_x = view_of(memory, rank, rec.expand_x);
        const TensorView ep_counts = view_of(memory, rank, rec.ep_send_counts);
        const TensorView tp_counts = view_of(memory, rank, rec.tp_send_counts);
        const bool missing = (!rec.expand_x.region.empty() && v.expand_x.data == nullptr) ||
                             (!rec.ep_send_counts.region.empty() && ep_counts.data == nullptr) ||
                             (!rec.tp_send_counts.region.empty() && tp_counts.data == nullptr);
        if (missing) {
            v = OwnerView{};
            if (!unreachable->ok()) continue;
            if (std::string why = memory.gone(rank); !why.empty()) {
                *unreachable = {Code::kRuntime, why};
            } else {
                *unreachable = {Code::kRuntime,
                                "the expert outputs of rank " + std::to_string(r) + " of '" +
                                    group +
                                    "' must be readable by the ranks they return to, got memory "
                                    "this process cannot map"};
            }
            continue;
        }
        // The owner's counts: its blocks (W·L on a MoE rank, W on a shared rank), then (T == 2)
        // its tpSendCounts pair.
        const int64_t blocks = r < shared_ranks ? world : bounds.local_blocks_moe;
        auto& copy = (*counts)[static_cast<std::size_t>(r)];
        copy.assign(static_cast<std::size_t>(blocks + 2), 0);
        if (ep_counts.data != nullptr && ep_counts.dim(0) >= blocks) {
            for (int64_t i = 0; i < blocks; ++i) copy[static_cast<std::size_t>(i)] = load1<int32_t>(ep_counts, i);
            v.ep_send_counts = TensorView::contiguous(copy.data(), DType::kInt32, {blocks});
        }
        if (tp_counts.data != nullptr) {
            copy[static_cast<std::size_t>(blocks)] = load1<int32_t>(tp_counts, 0);
            copy[static_cast<std::size_t>(blocks + 1)] = load1<int32_t>(tp_counts, 1);
            v.tp_send_counts = TensorView::contiguous(copy.data() + blocks, DType::kInt32, {2});
        }
    }
    return Status::Ok();
}

}  // namespace

Status run_combine(const CombineOp& op) {
    util::FloatEnvironment float_env;
    transport::TimeoutScope timeout(op.config.timeout_ms.value_or(0));
    Scratch& s = scratch();
    // Sized before arriving: after it nothing allocates.
    s.acc.resize(static_cast<std::size_t>(op.hidden));
    s.row.resize(static_cast<std::size_t>(op.hidden));
    s.peer_row.resize(static_cast<std::size_t>(op.hidden));
    s.rows.resize(static_cast<std::size_t>(op.top_k));
    s.weights.resize(static_cast<std::size_t>(op.top_k));

    CallRounds rounds(op.ep, op.tp);
    CombineRecord mine;
    mine.header.attrs = make_digest(
        {2, &op.config, op.top_k, op.hidden, op.in.expand_x.dtype, op.in.expand_x.dtype, true});
    if (!op.pre_error.ok()) {
        // Every rank fails in check_headers; nothing of mine is exposed, nobody reads it.
        mine.header.set_error(op.pre_error);
    } else if (Status published = publish_inputs(op, rounds.endpoint(), &mine); !published.ok()) {
        mine.header.set_error(published);
    }
    Status verdict = rounds.begin(&mine.header, sizeof(mine));
    try {  // once arrived, every path goes through finish()
        if (verdict.ok()) verdict = rounds.check_headers();
        RecordBounds bounds;
        bounds.world = op.config.ep_world_size;
        bounds.experts = op.config.moe_expert_num;
        bounds.top_k = op.top_k;
        bounds.hidden = op.hidden;
        bounds.nodes = rounds.own_memory().node_count();
        bounds.x_dtype = op.in.expand_x.dtype;
        bounds.expand_dtype = op.in.expand_x.dtype;
        bounds.local_blocks_moe = op.config.ep_world_size * op.config.local_moe_expert_num();
        bounds.tp = rounds.has_peer();
        const int64_t shared_ranks = op.config.shared_expert_rank_num;
        Status unreachable = Status::Ok();
        if (verdict.ok()) {
            verdict = read_owners(
                [&](int64_t r) -> const CombineRecord& { return rounds.own<CombineRecord>(r); },
                bounds,
                shared_ranks,
                rounds.own_memory(),
                rounds.ep_name(),
                &s.own_owners,
                &s.own_counts,
                &unreachable);
        }
        if (verdict.ok() && rounds.has_peer()) {
            verdict = read_owners(
                [&](int64_t r) -> const CombineRecord& { return rounds.peer<CombineRecord>(r); },
                bounds,
                shared_ranks,
                rounds.peer_memory(),
                rounds.peer_name(),
                &s.peer_owners,
                &s.peer_counts,
                &unreachable);
        }
        if (verdict.ok() && rounds.own_memory().node_count() > 1) {
            // Every rank takes part (the verdict so far is the same on all): the rows of my
            // tokens held on other nodes come over (remote.hpp).
            const Topology topo{op.config.ep_world_size,
                                op.config.shared_expert_rank_num,
                                op.config.moe_expert_num,
                                op.config.local_moe_expert_num()};
            verdict =
                bring_remote_rows(op, topo, rounds.own_memory(), &s.own_owners, &s.remote_counts);
        }
        if (verdict.ok()) verdict = unreachable;
        if (verdict.ok()) {
            // Only this rank can judge its own expertIds/expandIdx against the owners' counts; the
            // verdict travels with its departure.
            RowLocator locator(op, rounds, s);
            TokenRows rows(op, locator);
            std::string why;
            if (!locate_all(op, rows, &why)) {
                verdict = {Code::kRuntime,
                           "expertIds/expandIdx of rank " + std::to_string(op.config.ep_rank_id) +
                               " of '" + rounds.ep_name() + "' " + why};
            } else {
                reduce_tokens(op, locator, rows, s);
            }
        }
    } catch (const std::exception& e) {
        verdict = {Code::kRuntime, std::string("combine must not fail inside, got: ") + e.what()};
    } catch (...) {
        verdict = {Code::kRuntime, "combine must not fail inside, got an unknown exception"};
    }
    return rounds.finish(verdict);
}

}  // namespace moedist::core
