#include "core/call_rounds.hpp"

#include "core/test_hooks.hpp"

namespace moedist::core {

CallRounds::CallRounds(const Communicator& ep, const std::optional<Communicator>& tp)
    : ep_(ep.group().get()),
      tp_(tp ? tp->group().get() : nullptr),
      ep_rank_(ep.rank()),
      tp_rank_(tp ? tp->rank() : 0) {}

const RecordHeader& CallRounds::own_header(int r) const {
    return *static_cast<const RecordHeader*>(ep_->record(r, ep_call_));
}

const RecordHeader& CallRounds::peer_header(int r) const {
    return *static_cast<const RecordHeader*>(peer_ep_->record(r, peer_ep_call_));
}

Status CallRounds::begin(RecordHeader* record, std::size_t bytes) {
    const auto deadline = transport::call_deadline();
    if (Status s = ep_->broken_status(); !s.ok()) return s;
    if (tp_ != nullptr) {
        if (Status s = tp_->broken_status(); !s.ok()) return s;
    }
    ep_call_ = ep_->begin_call(ep_rank_);

    if (tp_ != nullptr) {
        TpRecord mine;
        mine.attrs = record->attrs;
        mine.ep_group = ep_;
        mine.ep_call = ep_call_;
        mine.ep_rank = ep_rank_;
        tp_call_ = tp_->begin_call(tp_rank_);
        tp_->arrive(tp_rank_, tp_call_, &mine, sizeof(mine));
        if (Status s = tp_->wait_arrivals(tp_call_, deadline); !s.ok()) {
            ep_->mark_broken(s.message());  // my EP peers would otherwise wait for me in vain
            return s;
        }
        const TpRecord& peer = record_of<TpRecord>(*tp_, 1 - tp_rank_, tp_call_);
        if (peer.ep_group == ep_ || peer.ep_group->size() != ep_->size() ||
            peer.ep_rank != ep_rank_) {
            // Arrive anyway with the verdict, so every rank of my EP group fails with it.
            record->set_error({Code::kRuntime,
                               "the TP peer in '" + tp_->name() +
                                   "' must be the same EP rank of another EP group of the same "
                                   "size, got EP rank " +
                                   std::to_string(peer.ep_rank) + " of '" + peer.ep_group->name() +
                                   "'"});
        } else {
            peer_hold_ = peer.ep_group->shared_from_this();
            peer_ep_ = peer.ep_group;
            peer_ep_call_ = peer.ep_call;
            record->peer_group = peer_ep_;
        }
    }
    ep_->arrive(ep_rank_, ep_call_, record, bytes);
    arrived_ = true;
    test_hooks::on_mid_call(ep_rank_);
    if (Status s = ep_->wait_arrivals(ep_call_, deadline); !s.ok()) return s;
    if (peer_ep_ != nullptr) return peer_ep_->wait_arrivals(peer_ep_call_, deadline);
    return Status::Ok();
}

Status CallRounds::check_headers() const {
    const int world = ep_->size();
    // Errors found before arriving: my group first, then the peer group.
    for (int r = 0; r < world; ++r) {
        if (own_header(r).error != 0)
            return {static_cast<Code>(own_header(r).error), own_header(r).error_message};
    }
    if (peer_ep_ != nullptr) {
        for (int r = 0; r < world; ++r) {
            if (peer_header(r).error != 0) {
                return {static_cast<Code>(peer_header(r).error), peer_header(r).error_message};
            }
        }
    }
    const RecordHeader& reference = own_header(0);
    for (int r = 0; r < world; ++r) {
        std::string diff =
            compare_digests(reference.attrs, 0, own_header(r).attrs, r, "'" + ep_->name() + "'");
        if (!diff.empty()) return {Code::kRuntime, diff};
        if (own_header(r).peer_group != reference.peer_group) {
            return {Code::kRuntime,
                    "ranks 0 and " + std::to_string(r) + " of '" + ep_->name() +
                        "' must pair with the same TP peer EP group"};
        }
    }
    if (peer_ep_ != nullptr) {
        for (int r = 0; r < world; ++r) {
            std::string diff =
                compare_digests(reference.attrs,
                                0,
                                peer_header(r).attrs,
                                r,
                                "'" + ep_->name() + "' (rank 0) and '" + peer_ep_->name() + "'");
            if (!diff.empty()) return {Code::kRuntime, diff};
            if (peer_header(r).peer_group != ep_) {
                return {Code::kRuntime,
                        "rank " + std::to_string(r) + " of '" + peer_ep_->name() +
                            "' must pair with '" + ep_->name() + "' as its TP peer EP group"};
            }
        }
    }
    return Status::Ok();
}

Status CallRounds::finish(const Status& verdict) {
    if (!arrived_) return verdict;
    const auto deadline = transport::call_deadline();
    ep_->depart(ep_rank_, ep_call_, verdict.raw_code(), verdict.message());
    int32_t flag = 0;
    int flag_rank = -1;
    std::string flag_message;
    Status waited = ep_->wait_departures(ep_call_, deadline, &flag, &flag_rank, &flag_message);
    std::string flag_group = ep_->name();
    if (peer_ep_ != nullptr) {
        int32_t peer_flag = 0;
        int peer_flag_rank = -1;
        std::string peer_message;
        Status peer_waited = peer_ep_->wait_departures(
            peer_ep_call_, deadline, &peer_flag, &peer_flag_rank, &peer_message);
        if (waited.ok() && !peer_waited.ok()) waited = peer_waited;
        if (flag == 0 && peer_flag != 0) {
            flag = peer_flag;
            flag_rank = peer_flag_rank;
            flag_message = std::move(peer_message);
            flag_group = peer_ep_->name();
        }
    }
    if (!verdict.ok()) return verdict;
    if (!waited.ok()) return waited;
    if (flag != 0) {
        // A peer's own failure, with its message (it names the rank and the cause).
        return {Code::kRuntime,
                flag_message.empty() ? "rank " + std::to_string(flag_rank) + " of '" + flag_group +
                                           "' must succeed, got a failure"
                                     : flag_message};
    }
    return Status::Ok();
}

Status bare_call(const Communicator& ep) {
    transport::LocalGroup& group = *ep.group();
    const int rank = ep.rank();
    const auto deadline = transport::call_deadline();
    if (Status s = group.broken_status(); !s.ok()) return s;
    const uint64_t call = group.begin_call(rank);
    const RecordHeader header;
    group.arrive(rank, call, &header, sizeof(header));
    Status arrived = group.wait_arrivals(call, deadline);
    group.depart(rank, call, 0);
    int32_t flag = 0;
    int flag_rank = -1;
    std::string flag_message;
    Status departed = group.wait_departures(call, deadline, &flag, &flag_rank, &flag_message);
    return arrived.ok() ? departed : arrived;
}

}  // namespace moedist::core
