// Dispatch, second phase: plan → exchange round → single copy → completion round.
//
//   send half (dispatch_send.cpp): this rank's plan and what it publishes for its receivers,
//     then round 1's publish (CallRounds::arrive)
//   receive half (dispatch_receive.cpp): round 1's wait (every rank's record readable), records
//     checked, senders read, rows copied in; round 2 (CallRounds::finish): nobody reads this
//     rank's memory any more
// A split call (pending.hpp) runs the halves apart; the blocking call back to back.
#include <chrono>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "core/dispatch_parts.hpp"
#include "core/pending.hpp"
#include "core/remote.hpp"
#include "core/tp_relay.hpp"
#include "util/float_env.hpp"
#include "util/log.hpp"

namespace moedist::core {
namespace {

// The receive half between the rounds; every path returns its verdict (finish() follows).
Status receive(const DispatchOp& op, const Topology& topo, CallRounds& rounds, DispatchScratch& s) {
    Status verdict = rounds.check_headers();
    const DispatchRecords own{&rounds, false};
    const DispatchRecords peer{&rounds, true};
    const RecordBounds bounds = dispatch_bounds(op, topo, rounds.own_memory().node_count());
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
    if (verdict.ok() && rounds.has_peer())
        verdict = check_group(op, topo, peer, s.peer_sources, group_bs, rounds.peer_name());
    uint64_t node_call = 0;
    bool node_round = false;
    if (verdict.ok() && rounds.own_memory().node_count() > 1) {
        // Ranks on other nodes: their rows come over once per node (remote.hpp).
        std::vector<const DispatchRecord*> records;
        for (int64_t r = 0; r < topo.world_size; ++r) records.push_back(&own(r));
        verdict = bring_remote_sources(
            op, topo, s.plan, rounds.own_memory(), records, &s.own_sources, &node_call);
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
    return verdict;
}

// One dispatch, blocking (two halves back to back, the thread's scratch) or split (its own
// scratch, the endpoints given back between the halves).
class DispatchCall final : public PendingCall {
public:
    DispatchCall(const DispatchOp& op, DispatchScratch* scratch)
        : op_(op),
          owned_(scratch == nullptr ? std::make_unique<DispatchScratch>() : nullptr),
          s_(scratch != nullptr ? *scratch : *owned_),
          topo_(topology_of(op_.config)),
          rounds_(op_.ep, op_.tp) {}
    ~DispatchCall() override {
        if (split_ && claimed_.ok() && !done_) (void)complete();  // keep the call order
    }

    // The send half; an error means nothing was counted or published.
    Status send(bool split) {
        started_ = transport::Clock::now();
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
    Status rebind_outputs(const DispatchOutputs& out) override {
        if (done_) return {Code::kInvalidParam, "a completed dispatch cannot take new outputs"};
        op_.out = out;
        return Status::Ok();
    }

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
            if (verdict.ok()) verdict = core::receive(op_, topo_, rounds_, s_);
        } catch (const std::exception& e) {
            verdict = {Code::kRuntime,
                       std::string("dispatch must not fail inside, got: ") + e.what()};
        } catch (...) {
            verdict = {Code::kRuntime, "dispatch must not fail inside, got an unknown exception"};
        }
        if (rounds_.relays_tp()) {  // T == 2 across nodes: the peer rows come from the TP peer
            verdict = relay_dispatch_rows(
                op_, rounds_, verdict, s_.own_layout.total_rows, &s_.peer_layout.total_rows);
        }
        result_ = rounds_.finish(verdict);
        done_ = true;
        log();
        if (split_) rounds_.release();
        return result_;
    }

private:
    void publish_and_arrive() {
        util::FloatEnvironment float_env;
        transport::TimeoutScope timeout(op_.config.timeout_ms.value_or(0));
        plan_sends(op_, s_);
        // Every buffer the move needs is sized before arriving: after it nothing allocates.
        s_.own_layout.block_end.resize(static_cast<std::size_t>(
            topo_.world_size * topo_.local_experts(op_.config.ep_rank_id)));
        s_.peer_layout.block_end.resize(s_.own_layout.block_end.size());
        s_.own_sources.resize(static_cast<std::size_t>(topo_.world_size));
        s_.peer_sources.resize(static_cast<std::size_t>(topo_.world_size));
        rounds_.set_performance_info(op_.out.performance_info);
        mine_.header.attrs = make_digest({1,
                                          &op_.config,
                                          op_.top_k,
                                          op_.hidden,
                                          op_.in.x.dtype,
                                          op_.out.expand_x.dtype,
                                          op_.in.expert_scales.has_value(),
                                          op_.in.extra ? op_.in.extra->dim(1) : 0,
                                          op_.in.extra ? op_.in.extra->dtype : DType::kBFloat16});
        if (!op_.pre_error.ok()) {
            // Every rank fails in check_headers; nothing of mine is exposed, nobody reads it.
            mine_.header.set_error(op_.pre_error);
        } else if (Status published = publish_inputs(op_, rounds_.endpoint(), s_.plan, &mine_);
                   !published.ok()) {
            mine_.header.set_error(published);
        }
        arrived_ = rounds_.arrive(&mine_.header, sizeof(mine_));
    }

    void log() const {
        MOEDIST_LOG(
            kInfo,
            "dispatch '{}' rank {}: BS {}, H {}, K {}, quantMode {}, {} rows received, "
            "{:.3f} ms{}: {}",
            rounds_.ep_name(),
            op_.config.ep_rank_id,
            op_.num_tokens,
            op_.hidden,
            op_.top_k,
            op_.config.quant_mode,
            result_.ok() ? s_.own_layout.total_rows + (op_.tp ? s_.peer_layout.total_rows : 0) : 0,
            std::chrono::duration<double, std::milli>(transport::Clock::now() - started_).count(),
            split_ ? " (split)" : "",
            result_.ok() ? "ok" : result_.message());
    }

    DispatchOp op_;
    std::unique_ptr<DispatchScratch> owned_;
    DispatchScratch& s_;
    Topology topo_;
    CallRounds rounds_;
    DispatchRecord mine_;
    transport::Clock::time_point started_;
    Status claimed_ = Status::Ok();
    Status arrived_ = Status::Ok();
    Status result_ = Status::Ok();
    bool split_ = false;
    bool deferred_ = false;
    bool done_ = false;
};

}  // namespace

Status run_dispatch(const DispatchOp& op) {
    DispatchCall call(op, &dispatch_scratch());
    if (Status s = call.send(/*split=*/false); !s.ok()) return s;
    return call.receive();
}

Status start_dispatch(const DispatchOp& op, std::unique_ptr<PendingCall>* out) {
    auto call = std::make_unique<DispatchCall>(op, nullptr);
    if (Status s = call->send(/*split=*/true); !s.ok()) return s;
    *out = std::move(call);
    return Status::Ok();
}

}  // namespace moedist::core
