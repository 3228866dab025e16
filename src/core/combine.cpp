// Combine, second phase: exchange round → each source rank pulls and reduces its own tokens →
// completion round (the reduction: combine_reduce.cpp).
//
//   before arriving   this rank's plan from its ids and mask; its expandX (the rows readers may
//                     touch), epSendCounts, tpSendCounts and, V2, the triples of its rows exposed
//   round 1           every rank's record readable; owners read (counts copied)
//   between nodes     the rows of my tokens held on other nodes come over (remote.hpp)
//   reduction         every row located and checked, then x
//   round 2           nobody reads this rank's memory any more
#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "core/call_rounds.hpp"
#include "core/combine_parts.hpp"
#include "core/ops.hpp"
#include "core/pending.hpp"
#include "core/plan.hpp"
#include "core/records.hpp"
#include "core/remote.hpp"
#include "core/scratch.hpp"
#include "core/tensor_access.hpp"
#include "core/tp_relay.hpp"
#include "core/views.hpp"
#include "util/float_env.hpp"

namespace moedist::core {
namespace {

// Rows of my expandX its readers may touch: my own rows and (T == 2) my peer's, as my counts
// (dispatch's outputs) say; the region covers no more.
int64_t used_rows(const CombineOp& op) {
    const int64_t blocks = op.config.ep_world_size * op.config.local_expert_num();
    int64_t rows = load1<int32_t>(op.in.ep_send_counts, blocks - 1);
    if (op.config.expert_padded()) {  // up to the end of the last expert that has rows
        const int64_t world = op.config.ep_world_size;
        const int64_t region = world * op.config.max_bs(op.num_tokens);
        int64_t end = 0, before = 0;
        for (int64_t e = 0; e < blocks / world; ++e) {
            const int64_t total = load1<int32_t>(op.in.ep_send_counts, (e + 1) * world - 1);
            if (total > before) end = e * region + std::min(total - before, region);
            before = total;
        }
        rows = end;
    } else if (op.tp) {
        rows = static_cast<int64_t>(load1<int32_t>(*op.in.tp_send_counts, 0)) +
               load1<int32_t>(*op.in.tp_send_counts, 1);
    }
    return std::clamp<int64_t>(rows, 0, op.in.expand_x.dim(0));
}

// My own rows (their triples are in my assistInfo), as many as my counts say.
int64_t own_rows_packed(const CombineOp& op) {
    const int64_t blocks = op.config.ep_world_size * op.config.local_expert_num();
    return std::clamp<int64_t>(
        load1<int32_t>(op.in.ep_send_counts, blocks - 1), 0, op.in.expand_x.dim(0));
}

// Rows of my expandX up to the end of my own rows (expert-padded: gaps included; no TP peer).
int64_t own_rows(const CombineOp& op) {
    return op.config.expert_padded() ? used_rows(op) : own_rows_packed(op);
}

// Expert-padded rows in memory peers cannot map (processes: outside the arena) are staged packed:
// each local expert's rows back to back, as the counts describe them, and their triples with
// them, so staging copies the rows and not the gaps (mine->padded_stride stays 0).
Status publish_padded_as_packed(const CombineOp& op,
                                transport::Transport& endpoint,
                                CombineRecord* mine) {
    const TensorView& x = op.in.expand_x;
    const int64_t world = op.config.ep_world_size;
    const int64_t region = world * op.config.max_bs(op.num_tokens);
    const int64_t local = op.config.local_expert_num();
    const int64_t rows = own_rows_packed(op);
    const auto elem = dtype_size(x.dtype);
    const auto row_bytes = static_cast<std::size_t>(op.hidden) * elem;
    auto* rows_copy = static_cast<std::byte*>(endpoint.scratch(
        kScratchStageX, std::max<std::size_t>(row_bytes * static_cast<std::size_t>(rows), 1)));
    auto* triples_copy = static_cast<int32_t*>(endpoint.scratch(
        kScratchStageAux3, std::max<std::size_t>(12 * static_cast<std::size_t>(rows), 1)));
    if (rows_copy == nullptr || triples_copy == nullptr)
        return {Code::kRuntime,
                "staging the expert-padded rows for peers must find shared memory, got none"};
    int64_t before = 0;
    for (int64_t e = 0; e < local && before < rows; ++e) {
        const int64_t total =
            std::min<int64_t>(load1<int32_t>(op.in.ep_send_counts, (e + 1) * world - 1), rows);
        const int64_t n = std::clamp<int64_t>(
            total - before, 0, std::max<int64_t>(0, std::min(region, x.dim(0) - e * region)));
        for (int64_t j = 0; j < n; ++j) {
            std::byte* out = rows_copy + static_cast<std::size_t>(before + j) * row_bytes;
            if (x.stride(1) == 1) {
                std::memcpy(out, element_ptr(x, e * region + j, 0), row_bytes);
            } else {
                for (int64_t c = 0; c < op.hidden; ++c)
                    std::memcpy(out + static_cast<std::size_t>(c) * elem,
                                element_ptr(x, e * region + j, c),
                                elem);
            }
            for (int64_t i = 0; i < 3; ++i)
                triples_copy[3 * (before + j) + i] =
                    load1<int32_t>(*op.in.assist_info, 3 * (e * region + j) + i);
        }
        before += n;
    }
    const TensorView packed = TensorView::contiguous(rows_copy, x.dtype, {before, op.hidden});
    if (Status s = publish_tensor(endpoint, packed, kScratchStageX, &mine->expand_x); !s.ok())
        return s;
    if (Status s =
            publish_tensor(endpoint, op.in.ep_send_counts, kScratchStageAux, &mine->ep_send_counts);
        !s.ok())
        return s;
    return publish_tensor(endpoint,
                          TensorView::contiguous(triples_copy, DType::kInt32, {3 * before}),
                          kScratchStageAux3,
                          &mine->assist);
}

Status publish_inputs(const CombineOp& op, transport::Transport& endpoint, CombineRecord* mine) {
    mine->ep_rank = op.config.ep_rank_id;
    mine->num_tokens = op.num_tokens;
    mine->tp_rank = op.config.tp_rank_id;
    if (Status s = endpoint.broken_status(); !s.ok()) return s;
    // Only the rows readers may touch, so the region (and the view peers see) covers no more.
    TensorView used = op.in.expand_x;
    used.shape[0] = used_rows(op);
    if (op.config.expert_padded()) {
        if (!endpoint.exposes_in_place(used.data, extent_bytes(used)))
            return publish_padded_as_packed(op, endpoint, mine);
        mine->padded_stride = op.config.max_bs(op.num_tokens);
    }
    if (Status s = publish_tensor(endpoint, used, kScratchStageX, &mine->expand_x); !s.ok())
        return s;
    if (Status s =
            publish_tensor(endpoint, op.in.ep_send_counts, kScratchStageAux, &mine->ep_send_counts);
        !s.ok())
        return s;
    if (op.in.tp_send_counts) {
        if (Status s = publish_tensor(
                endpoint, *op.in.tp_send_counts, kScratchStageAux2, &mine->tp_send_counts);
            !s.ok())
            return s;
    }
    if (op.config.v2()) {  // the triples of the rows readers may touch (3 per own row)
        TensorView triples = *op.in.assist_info;
        triples.shape[0] = std::min<int64_t>(triples.dim(0), 3 * own_rows(op));
        return publish_tensor(endpoint, triples, kScratchStageAux3, &mine->assist);
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
            return {
                Code::kRuntime,
                "the combine record of rank " + std::to_string(r) + " of '" + group + "' " + why};
        }
        OwnerView& v = (*owners)[static_cast<std::size_t>(r)];
        v = OwnerView{};
        v.tp_rank = rec.tp_rank;
        if (memory.node_of(rank) != my_node) continue;  // its rows come over (remote.hpp), packed
        v.padded_stride = rec.padded_stride;  // checked: 0 (packed or staged packed) or maxBs
        v.expand_x = view_of(memory, rank, rec.expand_x);
        const TensorView ep_counts = view_of(memory, rank, rec.ep_send_counts);
        const TensorView tp_counts = view_of(memory, rank, rec.tp_send_counts);
        v.assist = view_of(memory, rank, rec.assist);
        const bool missing = (!rec.expand_x.region.empty() && v.expand_x.data == nullptr) ||
                             (!rec.ep_send_counts.region.empty() && ep_counts.data == nullptr) ||
                             (!rec.tp_send_counts.region.empty() && tp_counts.data == nullptr) ||
                             (!rec.assist.region.empty() && v.assist.data == nullptr);
        if (missing) {
            v = OwnerView{};
            if (!unreachable->ok()) continue;
            if (std::string why = memory.gone(rank, true); !why.empty()) {
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
            for (int64_t i = 0; i < blocks; ++i)
                copy[static_cast<std::size_t>(i)] = load1<int32_t>(ep_counts, i);
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

// One combine, blocking or split (as DispatchCall in dispatch.cpp).
class CombineCall final : public PendingCall {
public:
    CombineCall(const CombineOp& op, CombineScratch* scratch)
        : op_(op),
          owned_(scratch == nullptr ? std::make_unique<CombineScratch>() : nullptr),
          s_(scratch != nullptr ? *scratch : *owned_),
          rounds_(op_.ep, op_.tp) {}
    ~CombineCall() override {
        if (split_ && claimed_.ok() && !done_) (void)complete();  // keep the call order
    }

    Status send(bool split) {
        split_ = split;
        claimed_ = rounds_.claim(split);
        if (!claimed_.ok()) return claimed_;
        deferred_ = split && !rounds_.endpoint().pipelines_calls();
        if (!deferred_) publish_and_arrive();
        if (split) rounds_.release();
        return Status::Ok();
    }

    Status complete() override { return receive(); }
    bool completed() const override { return done_; }

    Status receive() {
        if (!claimed_.ok()) return claimed_;
        if (done_) return result_;
        if (split_) {
            if (Status s = rounds_.reclaim(); !s.ok()) return s;  // still pending
        }
        if (deferred_) publish_and_arrive();
        util::FloatEnvironment float_env;
        transport::TimeoutScope timeout(op_.config.timeout_ms.value_or(0));
        Status verdict = arrived_;
        try {  // once arrived, every path goes through finish()
            if (verdict.ok()) verdict = rounds_.gather();
            if (verdict.ok()) verdict = gather_rows();
        } catch (const std::exception& e) {
            verdict = {Code::kRuntime,
                       std::string("combine must not fail inside, got: ") + e.what()};
        } catch (...) {
            verdict = {Code::kRuntime, "combine must not fail inside, got an unknown exception"};
        }
        result_ = rounds_.finish(verdict);
        done_ = true;
        if (split_) rounds_.release();
        return result_;
    }

private:
    void publish_and_arrive() {
        util::FloatEnvironment float_env;
        transport::TimeoutScope timeout(op_.config.timeout_ms.value_or(0));
        // Sized before arriving: after it nothing allocates.
        const auto hidden = static_cast<std::size_t>(op_.hidden);
        s_.acc.resize(hidden);
        s_.row.resize(hidden);
        s_.peer_row.resize(hidden);
        s_.rows.resize(static_cast<std::size_t>(op_.top_k));
        s_.weights.resize(static_cast<std::size_t>(op_.top_k));
        s_.unweighted.resize(static_cast<std::size_t>(op_.config.shared_experts() + 1));
        if (op_.config.v2()) {
            s_.special.resize(3 * hidden);
            s_.narrow.resize(hidden);
        }
        // The plan finds V2's rows, and V1's rows on other nodes; V1 on one node has expandIdx.
        if (op_.pre_error.ok() && (op_.config.v2() || rounds_.endpoint().node_count() > 1))
            plan_combine(op_, s_);
        rounds_.set_performance_info(op_.in.performance_info);
        mine_.header.attrs = make_digest({2,
                                          &op_.config,
                                          op_.top_k,
                                          op_.hidden,
                                          op_.in.expand_x.dtype,
                                          op_.in.expand_x.dtype,
                                          true});
        if (op_.tp) {
            if (Status paired = rounds_.pair(mine_.header.attrs); !paired.ok()) {
                arrived_ = paired;
                return;
            }
            if (rounds_.relays_tp()) relay_partials();
        }
        if (!op_.pre_error.ok()) {
            // Every rank fails in check_headers; nothing of mine is exposed, nobody reads it.
            mine_.header.set_error(op_.pre_error);
        } else if (Status published = publish_inputs(op_, rounds_.endpoint(), &mine_);
                   !published.ok()) {
            mine_.header.set_error(published);
        }
        arrived_ = rounds_.arrive(&mine_.header, sizeof(mine_));
    }

    // T == 2 across nodes (tp_relay.hpp): my own rows with the TP peer's partials added; from
    // here on this rank returns them as a T == 1 rank returns its rows.
    void relay_partials() {
        TensorView summed;
        const Status verdict = op_.pre_error.ok() ? rounds_.pairing() : op_.pre_error;
        const Status relayed = relay_combine_partials(op_, rounds_, verdict, &summed);
        if (!verdict.ok()) return;  // (the pairing's verdict travels in my record)
        if (!relayed.ok()) {
            op_.pre_error = relayed;
            return;
        }
        op_.in.expand_x = summed;
        op_.in.tp_send_counts.reset();
        op_.tp.reset();
    }

    // Between the rounds: owners read, remote rows brought, tokens reduced.
    Status gather_rows() {
        const CombineOp& op = op_;
        CallRounds& rounds = rounds_;
        CombineScratch& s = s_;
        Status verdict = rounds.check_headers();
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
        bounds.v2 = op.config.v2();
        bounds.padded_stride = op.config.expert_padded() ? op.config.max_bs(op.num_tokens) : 0;
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
            verdict = bring_remote_rows(op,
                                        topology_of(op.config),
                                        s.plan,
                                        rounds.own_memory(),
                                        &s.own_owners,
                                        &s.remote_counts);
        }
        if (verdict.ok()) verdict = unreachable;
        // Only this rank can judge its own expertIds (and expandIdx or mask) against the
        // owners' counts; the verdict travels with its departure.
        if (verdict.ok()) verdict = gather_and_reduce(op, rounds, s);
        return verdict;
    }

    CombineOp op_;
    std::unique_ptr<CombineScratch> owned_;
    CombineScratch& s_;
    CallRounds rounds_;
    CombineRecord mine_;
    Status claimed_ = Status::Ok();
    Status arrived_ = Status::Ok();
    Status result_ = Status::Ok();
    bool split_ = false;
    bool deferred_ = false;
    bool done_ = false;
};

}  // namespace

Status run_combine(const CombineOp& op) {
    CombineCall call(op, &combine_scratch());
    if (Status s = call.send(/*split=*/false); !s.ok()) return s;
    return call.receive();
}

Status start_combine(const CombineOp& op, std::unique_ptr<PendingCall>* out) {
    auto call = std::make_unique<CombineCall>(op, nullptr);
    if (Status s = call->send(/*split=*/true); !s.ok()) return s;
    *out = std::move(call);
    return Status::Ok();
}

}  // namespace moedist::core
