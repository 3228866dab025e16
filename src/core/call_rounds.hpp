// The two rounds of every call, over the rank's EP group and, with T == 2, its TP pair:
//
//   begin():  (T == 2) publish my TP record — where my EP group is and my call number there —
//             and read my TP peer's, which names the peer's EP group; then publish my EP record
//             (its header names that peer group) and wait for every EP peer and, with T == 2,
//             for every rank of the peer's EP group (its members fill my peer rows and hold the
//             partials of my tokens).
//   verdict:  check_headers() and the callers' run-time checks read only records that every
//             rank of both groups reads, so all reach the same verdict.
//   finish(): mark my call done and wait until every rank of both EP groups that arrived has
//             (SPEC §3 completion: nobody reads my tensors after I return). Every path out of a
//             call that has arrived goes through finish(), errors included.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "core/records.hpp"
#include "moedist/communicator.hpp"
#include "transport/local_group.hpp"

namespace moedist::core {

class CallRounds {
public:
    CallRounds(const Communicator& ep, const std::optional<Communicator>& tp);

    // `record` starts with a RecordHeader whose attrs are set; begin() fills the rest of it.
    Status begin(RecordHeader* record, std::size_t bytes);

    // Records of this call, by EP rank: in my EP group, and (T == 2) in my TP peer's EP group.
    template <class Record>
    const Record& own(int64_t ep_rank) const {
        return record_of<Record>(*ep_, static_cast<int>(ep_rank), ep_call_);
    }
    template <class Record>
    const Record& peer(int64_t ep_rank) const {
        return record_of<Record>(*peer_ep_, static_cast<int>(ep_rank), peer_ep_call_);
    }
    bool has_peer() const { return peer_ep_ != nullptr; }
    const transport::LocalGroup& ep_group() const { return *ep_; }
    const transport::LocalGroup* peer_group() const { return peer_ep_; }

    // Every rank's header in both groups: errors found before arriving, attribute digests,
    // and that both EP groups name each other as TP peers.
    Status check_headers() const;

    // Completion. `verdict` is this rank's outcome so far (its failure travels as the departure
    // flag); returns the call's outcome: the verdict, a broken group, or a peer's failure.
    Status finish(const Status& verdict);

private:
    const RecordHeader& own_header(int r) const;
    const RecordHeader& peer_header(int r) const;

    transport::LocalGroup* ep_;
    transport::LocalGroup* tp_;
    int ep_rank_;
    int tp_rank_;
    bool arrived_ = false;
    uint64_t ep_call_ = 0;
    uint64_t tp_call_ = 0;
    transport::LocalGroup* peer_ep_ = nullptr;
    std::shared_ptr<transport::LocalGroup> peer_hold_;  // the peer group outlives this call
    uint64_t peer_ep_call_ = 0;
};

// The two rounds of a call with no data and no checks on `ep` (arrive, wait for all, depart,
// wait for all): the latency floor `moedist bench` puts next to every operation.
Status bare_call(const Communicator& ep);

}  // namespace moedist::core
