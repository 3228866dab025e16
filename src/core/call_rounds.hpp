// The two rounds of every call, over the rank's EP group and, with T == 2, its TP pair:
//
//   claim():  take my endpoints (one thread at a time each: a second thread fails at once) and
//             give the call its sequence number and scratch bank. A blocking call needs no call
//             in flight; a split call's send half at most one (two in flight, in order).
//   pair():   (T == 2) publish my TP record — which EP group I am in and my call number there —
//             and read my TP peer's, which names the peer's EP group; open that group (both
//             on one node), or, when the EP groups span nodes, plan a relay round instead: the
//             pair then exchanges its own rows over the TP group (tp_relay.hpp).
//   arrive(): pair() unless done, then publish my EP record (its header names the peer group).
//   gather(): wait for every EP peer's record and, with T == 2, for every rank of the peer's EP
//             group (its members fill my peer rows and hold the partials of my tokens).
//   verdict:  check_headers() and the callers' run-time checks read only records that every
//             rank of both groups reads, so all reach the same verdict.
//   finish(): mark my call done and wait until every rank of both EP groups that arrived has
//             (docs/contract.md §3 completion: nobody reads my memory after I return). Every path
//             out of a call that has arrived goes through finish(), errors included.
//
// A split call releases its endpoints after arrive() and reclaims them (in call order) before
// gather(); a blocking call holds them throughout.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "core/records.hpp"
#include "moedist/communicator.hpp"
#include "moedist/tensor.hpp"
#include "transport/transport.hpp"

namespace moedist::core {

class CallRounds {
public:
    CallRounds(const Communicator& ep, const std::optional<Communicator>& tp);
    ~CallRounds();
    CallRounds(const CallRounds&) = delete;
    CallRounds& operator=(const CallRounds&) = delete;

    // This rank's EP endpoint, for exposing memory and scratch before begin().
    transport::Transport& endpoint() const { return *ep_; }

    // V4's performanceInfo (int64 (W,)): begin() adds to entry r the microseconds this rank
    // waited for rank r's record (timing only).
    void set_performance_info(const std::optional<TensorView>& info) { performance_ = info; }

    // Takes the endpoints for a call (`split`: its send half) and numbers it; on failure nothing
    // was counted or published.
    Status claim(bool split);
    // Between the halves of a split call: gives the endpoints back / takes them again (fails,
    // leaving the call pending, when another thread holds them or an earlier call is still
    // to be received).
    void release();
    Status reclaim();
    uint64_t sequence() const { return sequence_; }

    // Numbers the EP call and (T == 2) meets the TP peer; a pairing verdict goes into the record
    // arrive() publishes. Fails only when the pair cannot meet (the EP group is then broken).
    Status pair(const AttrDigest& attrs);
    // `record` starts with a RecordHeader whose attrs are set; arrive() fills the rest of it.
    Status arrive(RecordHeader* record, std::size_t bytes);
    Status gather();
    Status begin(RecordHeader* record, std::size_t bytes) {
        if (Status s = arrive(record, bytes); !s.ok()) return s;
        return gather();
    }

    // Records of this call, by EP rank: in my EP group, and (T == 2) in my TP peer's EP group.
    template <class Record>
    const Record& own(int64_t ep_rank) const {
        return copy_of<Record>(own_records_, ep_rank);
    }
    template <class Record>
    const Record& peer(int64_t ep_rank) const {
        return copy_of<Record>(peer_records_, ep_rank);
    }
    bool has_peer() const { return peer_ep_ != nullptr; }
    // T == 2 with EP groups that span nodes: this call owes one relay round on the TP pair.
    bool relays_tp() const { return relay_; }
    // The pairing's verdict (published in my EP record by arrive()).
    const Status& pairing() const { return pair_error_; }
    // The relay round: publish `mine` (or, when `verdict` failed, the failure), wait for the
    // peer's, run `read` on it unless either side failed, then wait until the peer has read mine
    // (both finish). Returns the first failure: mine, the peer's, or the pair's.
    Status relay_round(
        const Status& verdict,
        TpRelayRecord* mine,
        const std::function<Status(const TpRelayRecord&, transport::Transport&)>& read);
    const std::string& ep_name() const { return ep_->name(); }
    const std::string& peer_name() const { return peer_ep_->name(); }
    // Endpoints that map the memory of my EP group's ranks and of the peer group's.
    transport::Transport& own_memory() const { return *ep_; }
    transport::Transport& peer_memory() const { return *peer_ep_; }
    // My TP group's endpoint (T == 2), for the relay round's memory.
    transport::Transport& tp_memory() const { return *tp_; }

    // Every rank's header in both groups: errors found before arriving, attribute digests,
    // and that both EP groups name each other as TP peers.
    Status check_headers() const;

    // A call this rank cannot make (its first phase failed with `cause`): arrives with the failure
    // in its record (361001 naming this rank; nothing exposed) and departs at once, so every
    // peer's matching call fails with it instead of waiting out the timeout. Does not wait.
    void abort(const Status& cause);

    // Completion. `verdict` is this rank's outcome so far (its failure travels as the departure
    // flag); returns the call's outcome: the verdict, a broken group, or a peer's failure. Ends
    // the call's bookkeeping whether or not it arrived.
    Status finish(const Status& verdict);

private:
    template <class Record>
    static const Record& copy_of(const std::vector<std::byte>& records, int64_t rank) {
        static_assert(std::is_trivially_copyable_v<Record>);
        static_assert(sizeof(Record) <= transport::Transport::kMaxRecordBytes);
        return *reinterpret_cast<const Record*>(records.data() +
                                                static_cast<std::size_t>(rank) *
                                                    transport::Transport::kMaxRecordBytes);
    }
    const RecordHeader& own_header(int r) const { return own<RecordHeader>(r); }
    const RecordHeader& peer_header(int r) const { return peer<RecordHeader>(r); }
    // Copies every rank's record of `call` on `endpoint` into `records`.
    static void copy_records(transport::Transport& endpoint,
                             uint64_t call,
                             std::vector<std::byte>* records);

    std::shared_ptr<transport::Transport> ep_;
    std::shared_ptr<transport::Transport> tp_;
    bool arrived_ = false;
    bool paired_ = false;
    bool relay_ = false;                // a relay round is owed (relays_tp)
    Status pair_error_ = Status::Ok();  // the pairing's verdict, published by arrive()
    transport::GroupRef peer_group_;    // my TP peer's EP group (T == 2)
    bool counted_ = false;              // claim() numbered the call; finish() marks it received
    bool finished_ = false;             // finish() ran after arriving
    uint64_t sequence_ = 0;
    uint64_t ep_call_ = 0;
    uint64_t tp_call_ = 0;
    std::shared_ptr<transport::Transport> peer_ep_;  // the paired EP group, held for the call
    uint64_t peer_ep_call_ = 0;
    bool entered_ep_ = false;
    bool entered_tp_ = false;
    std::vector<std::byte> own_records_;  // W records of kMaxRecordBytes, this call's
    std::vector<std::byte> peer_records_;
    std::optional<TensorView> performance_;
    std::vector<int64_t> arrival_us_;
};

// 561002 (with how to lay ranks out) unless both ranks of the TP group `tp` are on one node.
Status tp_pair_on_one_node(transport::Transport& tp);

// CallRounds::abort for a call whose first phase failed on this rank (nothing when `ep` is not a
// live communicator, or is broken, or is running a call on another thread).
void abort_call(const Communicator& ep, const std::optional<Communicator>& tp, const Status& cause);

// The two rounds of a call with no data and no checks on `ep` (publish, wait for all, finish,
// wait for all): the latency floor `moedist bench` puts next to every operation.
Status bare_call(const Communicator& ep);

}  // namespace moedist::core
