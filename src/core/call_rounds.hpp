// The two rounds of every call, over the rank's EP group and, with T == 2, its TP pair:
//
//   begin():  publish my EP record (and my TP record: where my EP group is, and my call number),
//             wait for every EP peer; with T == 2 wait for the TP peer, then for every rank of
//             the peer's EP group (its members fill my peer rows / hold my tokens' partials).
//   finish(): mark my call done in my EP group and wait until every rank of both EP groups has
//             (SPEC §3 completion: nobody reads my tensors after I return).
//
// After begin() returns OK every rank of both groups has published; the records stay valid until
// finish() returns.
#pragma once

#include <optional>
#include <string>

#include "core/records.hpp"
#include "moedist/communicator.hpp"
#include "transport/local_group.hpp"

namespace moedist::core {

class CallRounds {
public:
    CallRounds(const Communicator& ep, const std::optional<Communicator>& tp);

    Status begin(const void* record, std::size_t bytes, const AttrDigest& attrs);

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

    // Compares every rank's digest (both EP groups, and the TP peer's) with mine.
    template <class Record>
    Status check_digests(const AttrDigest& mine) const {
        for (int r = 0; r < ep_->size(); ++r) {
            std::string diff = compare_digests(own<Record>(0).attrs, 0, own<Record>(r).attrs, r, ep_->name());
            if (!diff.empty()) return {Code::kRuntime, diff};
        }
        if (peer_ep_ != nullptr) {
            for (int r = 0; r < peer_ep_->size(); ++r) {
                std::string diff = compare_digests(mine, ep_rank_, peer<Record>(r).attrs, r, peer_ep_->name());
                if (!diff.empty()) return {Code::kRuntime, diff};
            }
        }
        return Status::Ok();
    }

    // Completion with a flag (0 = fine). *failed_rank >= 0 names a rank whose flag was set, and
    // *failed_group its group's name.
    Status finish(int32_t flag, int* failed_rank, std::string* failed_group);

private:
    transport::LocalGroup* ep_;
    transport::LocalGroup* tp_;
    int ep_rank_;
    int tp_rank_;
    uint64_t ep_call_ = 0;
    uint64_t tp_call_ = 0;
    transport::LocalGroup* peer_ep_ = nullptr;
    uint64_t peer_ep_call_ = 0;
    transport::Clock::time_point deadline_;
};

}  // namespace moedist::core
