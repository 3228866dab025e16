#include "core/call_rounds.hpp"

namespace moedist::core {

CallRounds::CallRounds(const Communicator& ep, const std::optional<Communicator>& tp)
    : ep_(ep.group().get()),
      tp_(tp ? tp->group().get() : nullptr),
      ep_rank_(ep.rank()),
      tp_rank_(tp ? tp->rank() : 0) {}

Status CallRounds::begin(const void* record, std::size_t bytes, const AttrDigest& attrs) {
    deadline_ = transport::call_deadline();
    if (Status s = ep_->broken_status(); !s.ok()) return s;
    if (tp_ != nullptr) {
        if (Status s = tp_->broken_status(); !s.ok()) return s;
    }
    ep_call_ = ep_->begin_call(ep_rank_);
    ep_->arrive(ep_rank_, ep_call_, record, bytes);
    if (tp_ != nullptr) {
        TpRecord mine;
        mine.attrs = attrs;
        mine.ep_group = ep_;
        mine.ep_call = ep_call_;
        mine.ep_rank = ep_rank_;
        tp_call_ = tp_->begin_call(tp_rank_);
        tp_->arrive(tp_rank_, tp_call_, &mine, sizeof(mine));
    }
    if (Status s = ep_->wait_arrivals(ep_call_, deadline_); !s.ok()) return s;
    if (tp_ == nullptr) return Status::Ok();

    if (Status s = tp_->wait_arrivals(tp_call_, deadline_); !s.ok()) return s;
    const int peer_tp_rank = 1 - tp_rank_;
    const TpRecord& peer = record_of<TpRecord>(*tp_, peer_tp_rank, tp_call_);
    if (std::string diff = compare_digests(attrs, tp_rank_, peer.attrs, peer_tp_rank, tp_->name());
        !diff.empty()) {
        return {Code::kRuntime, diff};
    }
    if (peer.ep_group == ep_ || peer.ep_group->size() != ep_->size() || peer.ep_rank != ep_rank_) {
        return {Code::kRuntime,
                "TP peer of communicator '" + tp_->name() +
                    "' must be the same EP rank in another EP group of the same size, got EP rank " +
                    std::to_string(peer.ep_rank) + " of '" + peer.ep_group->name() + "'"};
    }
    peer_ep_ = peer.ep_group;
    peer_ep_call_ = peer.ep_call;
    return peer_ep_->wait_arrivals(peer_ep_call_, deadline_);
}

Status CallRounds::finish(int32_t flag, int* failed_rank, std::string* failed_group) {
    *failed_rank = -1;
    ep_->depart(ep_rank_, ep_call_, flag);
    int32_t any = 0;
    int rank = -1;
    if (Status s = ep_->wait_departures(ep_call_, deadline_, &any, &rank); !s.ok()) return s;
    if (any != 0) {
        *failed_rank = rank;
        *failed_group = ep_->name();
    }
    if (peer_ep_ != nullptr) {
        if (Status s = peer_ep_->wait_departures(peer_ep_call_, deadline_, &any, &rank); !s.ok()) {
            return s;
        }
        if (any != 0 && *failed_rank < 0) {
            *failed_rank = rank;
            *failed_group = peer_ep_->name();
        }
    }
    return Status::Ok();
}

}  // namespace moedist::core
