// Dispatch, second phase: plan → exchange round → single copy → completion round.
//
//   send half (dispatch_send.cpp): this rank's plan and what it publishes for its receivers
//   round 1 (CallRounds::begin): every rank's record readable
//   receive half (dispatch_receive.cpp): records checked, senders read, rows copied in
//   round 2 (CallRounds::finish): nobody reads this rank's memory any more
#include <chrono>
#include <exception>
#include <string>
#include <vector>

#include "core/dispatch_parts.hpp"
#include "core/remote.hpp"
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
    if (verdict.ok()) verdict = check_group(op, topo, own, s.own_sources, group_bs, rounds.ep_name());
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

}  // namespace

Status run_dispatch(const DispatchOp& op) {
    util::FloatEnvironment float_env;
    transport::TimeoutScope timeout(op.config.timeout_ms.value_or(0));
    const auto started = transport::Clock::now();
    DispatchScratch& s = dispatch_scratch();
    const Topology topo = topology_of(op.config);
    plan_sends(op, s);
    // Every buffer the move needs is sized before arriving: after it nothing allocates.
    s.own_layout.block_end.resize(
        static_cast<std::size_t>(topo.world_size * topo.local_experts(op.config.ep_rank_id)));
    s.peer_layout.block_end.resize(s.own_layout.block_end.size());
    s.own_sources.resize(static_cast<std::size_t>(topo.world_size));
    s.peer_sources.resize(static_cast<std::size_t>(topo.world_size));

    CallRounds rounds(op.ep, op.tp);
    rounds.set_performance_info(op.out.performance_info);
    DispatchRecord mine;
    mine.header.attrs = make_digest({1,
                                     &op.config,
                                     op.top_k,
                                     op.hidden,
                                     op.in.x.dtype,
                                     op.out.expand_x.dtype,
                                     op.in.expert_scales.has_value()});
    if (!op.pre_error.ok()) {
        // Every rank fails in check_headers; nothing of mine is exposed, nobody reads it.
        mine.header.set_error(op.pre_error);
    } else if (Status published = publish_inputs(op, rounds.endpoint(), s.plan, &mine);
               !published.ok()) {
        mine.header.set_error(published);
    }

    Status verdict = rounds.begin(&mine.header, sizeof(mine));
    try {  // once arrived, every path goes through finish()
        if (verdict.ok()) verdict = receive(op, topo, rounds, s);
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
