// The C++ API: a thin layer over core::prepare_* (first phase) and core::run_* (second phase).
#include "moedist/moedist.hpp"

#include "api/boundary.hpp"
#include "core/call_rounds.hpp"
#include "core/ops.hpp"
#include "core/pending.hpp"
#include "transport/access.hpp"

namespace moedist {
namespace {
core::CallExtras extras_of(const std::optional<Communicator>& tp) {
    core::CallExtras extras;
    if (tp) extras.group_tp = tp->name();
    return extras;
}
}  // namespace

MoeDistributor::MoeDistributor(Communicator ep,
                               std::optional<Communicator> tp,
                               const MoeConfig& config) {
    std::optional<MoeDistributor> made;
    throw_if_error(create(std::move(ep), std::move(tp), config, &made));
    *this = std::move(*made);
}

Status MoeDistributor::create(Communicator ep,
                              std::optional<Communicator> tp,
                              const MoeConfig& config,
                              std::optional<MoeDistributor>* out) {
    if (Status s = config.validate(); !s.ok()) return s;
    if (!ep.valid()) return {Code::kNullptr, "ep communicator must be valid, got an empty handle"};
    if (ep.size() != config.ep_world_size || ep.rank() != config.ep_rank_id) {
        return {Code::kInnerTiling,
                "epWorldSize/epRankId must match communicator '" + ep.name() + "' (" +
                    std::to_string(ep.size()) + "/" + std::to_string(ep.rank()) + "), got " +
                    std::to_string(config.ep_world_size) + "/" + std::to_string(config.ep_rank_id)};
    }
    if (config.tp_size() == 2 && (!tp || !tp->valid())) {
        return {Code::kNullptr, "tp communicator must be given when tpWorldSize = 2, got none"};
    }
    if (config.tp_size() == 2 && (tp->size() != 2 || tp->rank() != config.tp_rank_id)) {
        return {Code::kInnerTiling,
                "tp communicator must be a 2-rank group whose rank is tpRankId = " +
                    std::to_string(config.tp_rank_id) + ", got size " + std::to_string(tp->size()) +
                    ", rank " + std::to_string(tp->rank())};
    }
    MoeDistributor made;
    made.ep_ = std::move(ep);
    made.tp_ = config.tp_size() == 2 ? std::move(tp) : std::nullopt;
    made.config_ = config;
    out->emplace(std::move(made));
    return Status::Ok();
}

Status MoeDistributor::try_dispatch(const DispatchInputs& in, const DispatchOutputs& out) noexcept {
    core::DispatchOp op;
    return api::guard(
        "dispatch",
        [&] { return api::scratch_text(op); },
        [&]() -> Status {
            if (Status s = core::prepare_dispatch(config_, ep_, tp_, in, out, extras_of(tp_), &op);
                !s.ok()) {
                core::abort_call(ep_, tp_, s);  // the peers' matching call fails with it at once
                return s;
            }
            return core::run_dispatch(op);
        });
}

Status MoeDistributor::try_combine(const CombineInputs& in, TensorView x_out) noexcept {
    core::CombineOp op;
    return api::guard(
        "combine",
        [&] { return api::scratch_text(op); },
        [&]() -> Status {
            if (Status s = core::prepare_combine(config_, ep_, tp_, in, x_out, extras_of(tp_), &op);
                !s.ok()) {
                core::abort_call(ep_, tp_, s);
                return s;
            }
            return core::run_combine(op);
        });
}

namespace {

// The split forms' first phase: a failure with no call in flight aborts the peers' matching call
// (as the blocking call does); with one in flight it cannot (calls complete in order), and the
// peers' receive half then times out naming this rank.
template <class Op, class Prepare, class Start>
Status start_split(const Communicator& ep,
                   const std::optional<Communicator>& tp,
                   PendingCall* pending,
                   std::unique_ptr<core::PendingCall>* impl,
                   Prepare prepare,
                   Start start) {
    if (pending == nullptr) return {Code::kNullptr, "pending must not be null"};
    if (pending->pending()) {
        return {Code::kInvalidParam,
                "pending must not hold a call whose receive half has not run, got one"};
    }
    Op op;
    if (Status s = prepare(&op); !s.ok()) {
        core::abort_call(ep, tp, s);
        return s;
    }
    return start(op, impl);
}

}  // namespace

PendingCall::PendingCall() noexcept = default;
PendingCall::~PendingCall() = default;
PendingCall::PendingCall(PendingCall&&) noexcept = default;
PendingCall& PendingCall::operator=(PendingCall&& other) noexcept {
    if (this != &other) {
        impl_.reset();  // runs the receive half of a call still pending
        impl_ = std::move(other.impl_);
    }
    return *this;
}

Status PendingCall::wait() noexcept {
    if (impl_ == nullptr) {
        return {Code::kInvalidParam, "wait() needs a pending call, got an empty one (no send half ran)"};
    }
    try {
        return impl_->complete();
    } catch (...) {
        return {Code::kRuntime, "the receive half must not fail inside, got an exception"};
    }
}

bool PendingCall::pending() const noexcept { return impl_ != nullptr && !impl_->completed(); }

Status MoeDistributor::try_dispatch_send(const DispatchInputs& in,
                                         const DispatchOutputs& out,
                                         PendingCall* pending) noexcept {
    core::DispatchOp scratch_op;
    return api::guard(
        "dispatch (send half)",
        [&] { return api::scratch_text(scratch_op); },
        [&]() -> Status {
            return start_split<core::DispatchOp>(
                ep_, tp_, pending, pending != nullptr ? &pending->impl_ : nullptr,
                [&](core::DispatchOp* op) {
                    return core::prepare_dispatch(config_, ep_, tp_, in, out, extras_of(tp_), op);
                },
                [](const core::DispatchOp& op, std::unique_ptr<core::PendingCall>* impl) {
                    return core::start_dispatch(op, impl);
                });
        });
}

Status MoeDistributor::try_combine_send(const CombineInputs& in,
                                        TensorView x_out,
                                        PendingCall* pending) noexcept {
    core::CombineOp scratch_op;
    return api::guard(
        "combine (send half)",
        [&] { return api::scratch_text(scratch_op); },
        [&]() -> Status {
            return start_split<core::CombineOp>(
                ep_, tp_, pending, pending != nullptr ? &pending->impl_ : nullptr,
                [&](core::CombineOp* op) {
                    return core::prepare_combine(config_, ep_, tp_, in, x_out, extras_of(tp_), op);
                },
                [](const core::CombineOp& op, std::unique_ptr<core::PendingCall>* impl) {
                    return core::start_combine(op, impl);
                });
        });
}

DispatchHandle MoeDistributor::dispatch(const DispatchInputs& in, const DispatchOutputs& out) {
    throw_if_error(try_dispatch(in, out));
    DispatchHandle handle;
    handle.expert_ids = in.expert_ids;
    handle.expand_idx = out.expand_idx;
    handle.ep_recv_counts = out.ep_recv_counts;
    handle.tp_recv_counts = out.tp_recv_counts;
    if (config_.v2()) {
        handle.assist_info = out.assist_info;
        handle.x_active_mask = in.x_active_mask;
    }
    handle.group = transport::Access::endpoint(ep_)->ref().id;
    handle.call = ++dispatches_;
    return handle;
}

void MoeDistributor::combine(const DispatchHandle& handle,
                             TensorView expert_out,
                             TensorView expert_scales,
                             TensorView x_out) {
    const uint64_t group = transport::Access::endpoint(ep_)->ref().id;
    if (handle.group != group || handle.call == 0 || handle.call > dispatches_) {
        throw Error({Code::kInnerTiling,
                     "the dispatch handle must come from a dispatch of this distributor on '" +
                         ep_.name() + "', got " +
                         (handle.group != group ? "a handle of another group"
                                                : "call " + std::to_string(handle.call) + " of " +
                                                      std::to_string(dispatches_))});
    }
    CombineInputs in;
    in.expand_x = expert_out;
    in.expert_ids = handle.expert_ids;
    in.expand_idx = handle.expand_idx;
    in.ep_send_counts = handle.ep_recv_counts;
    in.expert_scales = expert_scales;
    in.tp_send_counts = handle.tp_recv_counts;
    in.assist_info = handle.assist_info;
    in.x_active_mask = handle.x_active_mask;
    throw_if_error(try_combine(in, x_out));
}

}  // namespace moedist
