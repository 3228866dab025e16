// Split calls (docs/contract.md §13): a dispatch or combine as a send half that returns once
// this rank's record is published, and a receive half that waits for the peers, moves the rows
// and completes the call. The blocking call is the two halves back to back.
//
//   start_*()   send half: claims the endpoints (at most 2 calls in flight per group, a third
//               fails at once), plans, stages and publishes, then gives the endpoints back.
//               On an endpoint that does not pipeline calls (the mpi engine) it only numbers
//               the call; everything happens in the receive half.
//   complete()  receive half, in call order (an earlier pending call first, or 361001 and the
//               call stays pending): round 1's wait, the checks, the copy, round 2. Its outcome
//               is the call's, as the blocking call's would be; later calls return it again.
//
// Between the halves the call's tensors must stay alive and untouched. A pending call destroyed
// before complete() runs it (the group's call order must not break).
#pragma once

#include <memory>

#include "core/ops.hpp"

namespace moedist::core {

class PendingCall {
public:
    virtual ~PendingCall() = default;
    virtual Status complete() = 0;
    // Whether complete() has run to the end (its outcome is final).
    virtual bool completed() const = 0;
    // A pending dispatch's outputs, given only now (Ascend's DispatchTeardown): the send half
    // reads none of them (a receiver writes its own), so any outputs of the same dtypes and
    // shapes the first phase accepted may take the place of the ones it was prepared with.
    virtual Status rebind_outputs(const DispatchOutputs& out) {
        (void)out;
        return {Code::kInvalidParam, "only a pending dispatch can take new outputs"};
    }
};

// The send halves. On failure nothing was published and *out is null.
Status start_dispatch(const DispatchOp& op, std::unique_ptr<PendingCall>* out);
Status start_combine(const CombineOp& op, std::unique_ptr<PendingCall>* out);

}  // namespace moedist::core
