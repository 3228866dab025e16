#include "core/call_rounds.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/test_hooks.hpp"
#include "transport/access.hpp"
#include "transport/bootstrap.hpp"
#include "util/peer_text.hpp"

namespace moedist::core {
namespace {

std::span<const std::byte> bytes_of(const void* p, std::size_t n) {
    return {static_cast<const std::byte*>(p), n};
}

Status claim(transport::Transport& endpoint, bool* entered);

}  // namespace

CallRounds::CallRounds(const Communicator& ep, const std::optional<Communicator>& tp)
    : ep_(transport::Access::endpoint(ep)), tp_(tp ? transport::Access::endpoint(*tp) : nullptr) {}

CallRounds::~CallRounds() {
    // A call left by an exception: it completes with a failure (peers fail with it instead of
    // waiting, and nobody reads this rank's memory after it returns), and leaves the in-flight
    // count, so the group's next call can run.
    if (arrived_ && !finished_) {
        (void)finish({Code::kRuntime,
                      "rank " + std::to_string(ep_->rank()) + " of '" + ep_->name() +
                          "' must complete its call, got an exception inside it"});
    } else if (counted_) {
        ep_->count_receive();
    }
    if (entered_ep_) ep_->leave();
    if (entered_tp_) tp_->leave();
}

void CallRounds::copy_records(transport::Transport& endpoint,
                              uint64_t call,
                              std::vector<std::byte>* records) {
    constexpr std::size_t kBytes = transport::Transport::kMaxRecordBytes;
    records->resize(static_cast<std::size_t>(endpoint.size()) * kBytes);
    for (int r = 0; r < endpoint.size(); ++r)
        std::memcpy(records->data() + static_cast<std::size_t>(r) * kBytes,
                    endpoint.record(r, call),
                    kBytes);
}

namespace {
Status claim(transport::Transport& endpoint, bool* entered) {
    if (endpoint.try_enter()) {
        *entered = true;
        return Status::Ok();
    }
    return {Code::kRuntime,
            "rank " + std::to_string(endpoint.rank()) + " of communicator '" + endpoint.name() +
                "' must run one call at a time, got a second call (from another thread) while "
                "one runs"};
}
}  // namespace

Status CallRounds::claim(bool split) {
    if (Status s = core::claim(*ep_, &entered_ep_); !s.ok()) return s;
    if (tp_ != nullptr) {
        if (Status s = core::claim(*tp_, &entered_tp_); !s.ok()) return s;
    }
    const uint64_t in_flight = ep_->sends_issued() - ep_->receives_done();
    if (in_flight >= (split ? transport::Transport::kMaxCallsInFlight : 1)) {
        return {Code::kRuntime,
                "rank " + std::to_string(ep_->rank()) + " of communicator '" + ep_->name() +
                    "' must have " + (split ? "at most 1 call" : "no call") +
                    " between its send and receive halves " +
                    (split ? "to start another send half" : "to run a blocking call") + ", got " +
                    std::to_string(in_flight) + " (run their receive halves first)"};
    }
    sequence_ = ep_->sends_issued();
    ep_->count_send();
    counted_ = true;
    ep_->set_scratch_bank(sequence_);
    return Status::Ok();
}

void CallRounds::release() {
    if (entered_ep_) ep_->leave();
    if (entered_tp_) tp_->leave();
    entered_ep_ = entered_tp_ = false;
}

Status CallRounds::reclaim() {
    if (Status s = core::claim(*ep_, &entered_ep_); !s.ok()) return s;
    if (tp_ != nullptr) {
        if (Status s = core::claim(*tp_, &entered_tp_); !s.ok()) {
            release();
            return s;
        }
    }
    if (counted_ && ep_->receives_done() != sequence_) {
        const uint64_t next = ep_->receives_done();
        release();
        return {Code::kRuntime,
                "rank " + std::to_string(ep_->rank()) + " of communicator '" + ep_->name() +
                    "' must run receive halves in call order, got call " +
                    std::to_string(sequence_) + "'s before call " + std::to_string(next) + "'s"};
    }
    ep_->set_scratch_bank(sequence_);
    return Status::Ok();
}

Status tp_pair_on_one_node(transport::Transport& tp) {
    if (tp.node_count() == 1) return Status::Ok();
    return {Code::kInnerTiling,
            "tpWorldSize = 2 needs both ranks of the TP group '" + tp.name() +
                "' on one node, got them on two: lay ranks out so that each TP pair shares a "
                "node (under mpirun, a TP pair on adjacent world ranks epRankId * 2 + tpRankId "
                "of one node; across hosts, both in one server's entry)"};
}

Status CallRounds::pair(const AttrDigest& attrs) {
    if (Status s = ep_->broken_status(); !s.ok()) return s;
    if (tp_ != nullptr) {
        if (Status s = tp_->broken_status(); !s.ok()) return s;
    }
    ep_call_ = ep_->begin_call();
    paired_ = true;
    if (tp_ == nullptr) return Status::Ok();
    const auto deadline = transport::call_deadline();
    TpRecord mine;
    mine.attrs = attrs;
    mine.ep_group = ep_->ref();
    mine.ep_call = ep_call_;
    mine.ep_rank = ep_->rank();
    mine.ep_size = ep_->size();
    mine.relay = ep_->node_count() > 1 ? 1 : 0;
    tp_call_ = tp_->begin_call();
    tp_->publish(tp_call_, bytes_of(&mine, sizeof(mine)));
    if (Status s = tp_->wait_published(tp_call_, deadline); !s.ok()) {
        ep_->mark_broken(s.message());  // my EP peers would otherwise wait for me in vain
        return s;
    }
    TpRecord peer;  // a copy: the peer's process may rewrite its slot
    std::memcpy(&peer, tp_->record(1 - tp_->rank(), tp_call_), sizeof(peer));
    // Both ranks of the pair decide from the same two records: relay rounds follow on both or
    // on neither.
    relay_ = mine.relay == 1 && peer.relay == 1 && peer.error == 0 && tp_->node_count() == 1;
    if (Status split = tp_pair_on_one_node(*tp_); !split.ok()) {
        pair_error_ = split;
    } else if (peer.ep_group == ep_->ref() || peer.ep_size != ep_->size() ||
               peer.ep_rank != ep_->rank()) {
        pair_error_ = {Code::kRuntime,
                       "the TP peer in '" + tp_->name() +
                           "' must be the same EP rank of another EP group of the same size, got "
                           "EP rank " +
                           std::to_string(peer.ep_rank) + " of a group of " +
                           std::to_string(peer.ep_size)};
    } else if (mine.relay == 1 || peer.relay == 1) {
        // Across nodes the peer group is never opened: what it would have said comes here.
        if (peer.error != 0) {
            pair_error_ = {
                Code::kRuntime,
                "the TP peer in '" + tp_->name() + "' must pass its first phase, got a failure"};
        } else if (mine.relay != peer.relay) {
            pair_error_ = {
                Code::kRuntime,
                "both EP groups of the TP pair '" + tp_->name() +
                    "' must span the same nodes, got one on one node and one across nodes"};
        } else if (std::memcmp(&mine.attrs, &peer.attrs, sizeof(AttrDigest)) != 0) {
            pair_error_ = {Code::kRuntime,
                           compare_digests(mine.attrs,
                                           tp_->rank(),
                                           peer.attrs,
                                           1 - tp_->rank(),
                                           "the TP pair '" + tp_->name() + "'")};
        }
        peer_group_ = peer.ep_group;
    } else {
        std::shared_ptr<transport::Transport> peer_group;
        pair_error_ = ep_->open_peer(peer.ep_group, static_cast<int>(ep_->rank()), &peer_group);
        if (pair_error_.ok()) {
            peer_ep_ = std::move(peer_group);
            peer_ep_call_ = peer.ep_call;
            peer_group_ = peer.ep_group;
        }
    }
    return Status::Ok();
}

Status CallRounds::arrive(RecordHeader* record, std::size_t bytes) {
    if (!paired_) {
        if (Status s = pair(record->attrs); !s.ok()) return s;
    }
    if (!pair_error_.ok() && record->error == 0) {
        // Arrive anyway with the verdict, so every rank of my EP group fails with it.
        record->set_error(pair_error_);
    }
    record->peer_group = peer_group_;
    test_hooks::on_record(ep_->rank(), record, bytes);
    ep_->publish(ep_call_, bytes_of(record, bytes));
    arrived_ = true;
    test_hooks::on_mid_call(ep_->rank());
    return Status::Ok();
}

Status CallRounds::relay_round(
    const Status& verdict,
    TpRelayRecord* mine,
    const std::function<Status(const TpRelayRecord&, transport::Transport&)>& read) {
    relay_ = false;  // one round per call
    Status outcome = verdict;
    if (!outcome.ok()) {
        *mine = TpRelayRecord{};
        mine->set_error(outcome);
    }
    const auto deadline = transport::call_deadline();
    const uint64_t call = tp_->begin_call();
    tp_->publish(call, bytes_of(mine, sizeof(*mine)));
    if (Status s = tp_->wait_published(call, deadline); !s.ok()) {
        tp_->finish(call, s.raw_code(), s.message());
        return outcome.ok() ? s : outcome;
    }
    TpRelayRecord peer;  // a copy: the peer's process may rewrite its slot
    std::memcpy(&peer, tp_->record(1 - tp_->rank(), call), sizeof(peer));
    if (outcome.ok() && peer.error != 0) {
        outcome = {transport::code_from_peer(peer.error), util::peer_text(peer.error_message)};
    }
    if (outcome.ok()) outcome = read(peer, *tp_);
    tp_->finish(call, outcome.raw_code(), outcome.message());
    transport::Flag flag;  // the peer has read my rows (or failed) when this returns
    Status done = tp_->wait_finished(call, deadline, &flag);
    if (!outcome.ok()) return outcome;
    if (!done.ok()) return done;
    if (flag.code != 0) return {transport::code_from_peer(flag.code), flag.message};
    return Status::Ok();
}

Status CallRounds::gather() {
    const auto deadline = transport::call_deadline();
    if (performance_ && performance_->data != nullptr) {
        arrival_us_.assign(static_cast<std::size_t>(ep_->size()), 0);
        if (Status s = ep_->wait_published(ep_call_, deadline, arrival_us_.data()); !s.ok())
            return s;
        const int64_t n = std::min<int64_t>(performance_->dim(0), ep_->size());
        for (int64_t r = 0; r < n; ++r) {
            int64_t value = 0;
            auto* at = static_cast<char*>(performance_->data) + r * performance_->stride(0) * 8;
            std::memcpy(&value, at, 8);
            value += std::max<int64_t>(arrival_us_[static_cast<std::size_t>(r)], 0);
            std::memcpy(at, &value, 8);
        }
    } else if (Status s = ep_->wait_published(ep_call_, deadline); !s.ok()) {
        return s;
    }
    copy_records(*ep_, ep_call_, &own_records_);
    if (peer_ep_ != nullptr) {
        if (peer_ep_->size() != ep_->size()) {
            return {Code::kRuntime,
                    "the TP peer's EP group '" + peer_ep_->name() + "' must have " +
                        std::to_string(ep_->size()) + " ranks, got " +
                        std::to_string(peer_ep_->size())};
        }
        if (Status s = peer_ep_->wait_published(peer_ep_call_, deadline); !s.ok()) return s;
        copy_records(*peer_ep_, peer_ep_call_, &peer_records_);
    }
    return Status::Ok();
}

Status CallRounds::check_headers() const {
    const int world = ep_->size();
    // Errors found before arriving: my group first, then the peer group (text from other
    // processes is bounded and shown as printable characters only).
    for (int r = 0; r < world; ++r) {
        if (own_header(r).error != 0) {
            return {transport::code_from_peer(own_header(r).error),
                    util::peer_text(own_header(r).error_message)};
        }
    }
    if (peer_ep_ != nullptr) {
        for (int r = 0; r < world; ++r) {
            if (peer_header(r).error != 0) {
                return {transport::code_from_peer(peer_header(r).error),
                        util::peer_text(peer_header(r).error_message)};
            }
        }
    }
    const RecordHeader& reference = own_header(0);
    for (int r = 0; r < world; ++r) {
        const RecordHeader& h = own_header(r);
        if (std::memcmp(&h.attrs, &reference.attrs, sizeof(AttrDigest)) != 0) {
            return {Code::kRuntime,
                    compare_digests(reference.attrs, 0, h.attrs, r, "'" + ep_->name() + "'")};
        }
        if (!(h.peer_group == reference.peer_group)) {
            return {Code::kRuntime,
                    "ranks 0 and " + std::to_string(r) + " of '" + ep_->name() +
                        "' must pair with the same TP peer EP group"};
        }
    }
    if (peer_ep_ != nullptr) {
        for (int r = 0; r < world; ++r) {
            const RecordHeader& h = peer_header(r);
            if (std::memcmp(&h.attrs, &reference.attrs, sizeof(AttrDigest)) != 0) {
                return {Code::kRuntime,
                        compare_digests(
                            reference.attrs,
                            0,
                            h.attrs,
                            r,
                            "'" + ep_->name() + "' (rank 0) and '" + peer_ep_->name() + "'")};
            }
            if (!(h.peer_group == ep_->ref())) {
                return {Code::kRuntime,
                        "rank " + std::to_string(r) + " of '" + peer_ep_->name() +
                            "' must pair with '" + ep_->name() + "' as its TP peer EP group"};
            }
        }
    }
    return Status::Ok();
}

void CallRounds::abort(const Status& cause) {
    if (cause.ok() || !claim(/*split=*/false).ok()) return;  // nothing in flight: in call order
    ep_->count_receive();
    counted_ = false;
    if (!ep_->broken_status().ok() || (tp_ != nullptr && !tp_->broken_status().ok())) return;
    RecordHeader header;
    header.set_error({Code::kRuntime,
                      "rank " + std::to_string(ep_->rank()) + " of '" + ep_->name() +
                          "' must pass its first phase, got: " + cause.message()});
    ep_call_ = ep_->begin_call();
    if (tp_ != nullptr) {  // my TP peer reads where my EP group's (aborted) call is
        TpRecord mine;
        mine.ep_group = ep_->ref();
        mine.ep_call = ep_call_;
        mine.ep_rank = ep_->rank();
        mine.ep_size = ep_->size();
        mine.relay = ep_->node_count() > 1 ? 1 : 0;
        mine.error = 1;  // no relay round follows
        tp_call_ = tp_->begin_call();
        tp_->publish(tp_call_, bytes_of(&mine, sizeof(mine)));
    }
    ep_->publish(ep_call_, bytes_of(&header, sizeof(header)));
    ep_->finish(ep_call_, header.error, header.error_message);
    // Nobody waits on this call here: engines whose sends need my progress get it now.
    const auto settle_by =
        std::min(transport::call_deadline(), transport::Clock::now() + std::chrono::seconds(5));
    ep_->settle_sends(settle_by);
    if (tp_ != nullptr) tp_->settle_sends(settle_by);
}

void abort_call(const Communicator& ep,
                const std::optional<Communicator>& tp,
                const Status& cause) {
    if (!ep.valid() || (tp && !tp->valid())) return;
    CallRounds rounds(ep, tp);
    rounds.abort(cause);
}

Status CallRounds::finish(const Status& verdict) {
    struct Received {  // the call leaves the in-flight count on every path
        CallRounds& rounds;
        ~Received() {
            if (rounds.counted_) rounds.ep_->count_receive();
            rounds.counted_ = false;
        }
    } received{*this};
    if (!arrived_) return verdict;
    finished_ = true;
    const auto deadline = transport::call_deadline();
    ep_->finish(ep_call_, verdict.raw_code(), verdict.message());
    transport::Flag flag;
    Status waited = ep_->wait_finished(ep_call_, deadline, &flag);
    std::string flag_group = ep_->name();
    if (peer_ep_ != nullptr) {
        transport::Flag peer_flag;
        Status peer_waited = peer_ep_->wait_finished(peer_ep_call_, deadline, &peer_flag);
        if (waited.ok() && !peer_waited.ok()) waited = peer_waited;
        if (flag.code == 0 && peer_flag.code != 0) {
            flag = std::move(peer_flag);
            flag_group = peer_ep_->name();
        }
    }
    if (!verdict.ok()) return verdict;
    if (!waited.ok()) return waited;
    if (flag.code != 0) {
        // A peer's own failure, with its message (it names the rank and the cause).
        return {Code::kRuntime,
                flag.message.empty() ? "rank " + std::to_string(flag.rank) + " of '" + flag_group +
                                           "' must succeed, got a failure"
                                     : flag.message};
    }
    return Status::Ok();
}

Status bare_call(const Communicator& ep) {
    transport::Transport& endpoint = *transport::Access::endpoint(ep);
    const auto deadline = transport::call_deadline();
    bool entered = false;
    if (Status s = claim(endpoint, &entered); !s.ok()) return s;
    struct Leave {
        transport::Transport& e;
        ~Leave() { e.leave(); }
    } leave{endpoint};
    if (endpoint.sends_issued() != endpoint.receives_done()) {
        return {Code::kRuntime,
                "communicator '" + endpoint.name() + "' must have no call in flight, got one"};
    }
    if (Status s = endpoint.broken_status(); !s.ok()) return s;
    const uint64_t call = endpoint.begin_call();
    const RecordHeader header;
    endpoint.publish(call, bytes_of(&header, sizeof(header)));
    Status arrived = endpoint.wait_published(call, deadline);
    endpoint.finish(call, 0, {});
    transport::Flag flag;
    Status finished = endpoint.wait_finished(call, deadline, &flag);
    return arrived.ok() ? finished : arrived;
}

}  // namespace moedist::core
