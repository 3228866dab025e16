// moedist/moedist.hpp — the C++ API: MoE expert-parallel dispatch and combine.
//
//   auto ep = moedist::Communicator::create_local_group(8);        // ranks as threads
//   moedist::MoeDistributor moe(ep[r], std::nullopt, config);       // config validated once
//   moedist::DispatchHandle h = moe.dispatch(inputs, outputs);     // on every rank's thread
//   // ... experts turn outputs.expand_x into expert outputs ...
//   moe.combine(h, expert_out, expert_scales, x_out);
//
// Layouts and arithmetic are docs/contract.md's; every call either succeeds on all ranks of the
// group or fails on all of them with the same code and message.
#pragma once

#include <memory>
#include <optional>

#include "moedist/communicator.hpp"
#include "moedist/config.hpp"
#include "moedist/convert.hpp"
#include "moedist/dtype.hpp"
#include "moedist/status.hpp"
#include "moedist/tensor.hpp"

namespace moedist {

struct DispatchInputs {
    TensorView x;                             // (BS, H) fp16/bf16 (or pre-quantized 8-bit)
    TensorView expert_ids;                    // (BS, K) int32
    std::optional<TensorView> scales;         // smooth/quant scales, mode dependent
    std::optional<TensorView> x_active_mask;  // V1: ignored. V2: (BS,) or (BS, K) bool
    std::optional<TensorView> expert_scales;  // (BS, K) fp32, fills expand_scales
    // Bytes each token carries beside its row (DeepEP's topk_idx, weights, fp8 scales): (BS, S),
    // any dtype; every row received gets its token's S columns in expand_extra. One host only.
    std::optional<TensorView> extra;
};

struct DispatchOutputs {
    TensorView expand_x;                         // (>= T*A, H)
    std::optional<TensorView> dynamic_scales;    // (>= T*A) fp32 when the mode makes scales
    TensorView expand_idx;                       // V1: (BS*K) int32. V2: not written (may be empty)
    TensorView expert_token_nums;                // (L or 1) int64
    TensorView ep_recv_counts;                   // (>= T*W*L or T*W) int32
    std::optional<TensorView> tp_recv_counts;    // (>= 2) int32 when T == 2
    std::optional<TensorView> expand_scales;     // (>= A) fp32, optional
    std::optional<TensorView> assist_info;       // V2: (>= 3*A) int32 (src, t, slot) per row
    std::optional<TensorView> performance_info;  // V2 (V4): (W) int64, microseconds waited
                                                 // per peer, added to (never reset)
    std::optional<TensorView> expand_extra;      // with extra: (>= T*A, S), extra's dtype; row i
                                                 // holds the extra of expand_x row i's token
};

struct CombineInputs {
    TensorView expand_x;                       // expert outputs, layout of dispatch's expand_x
    TensorView expert_ids;                     // (BS, K) int32, as given to dispatch
    TensorView expand_idx;                     // V1: dispatch's expand_idx. V2: unused
    TensorView ep_send_counts;                 // dispatch's ep_recv_counts
    TensorView expert_scales;                  // (BS, K) fp32 routing weights. V2: empty (a dim
                                               // 0): unweighted (every weight 1)
    std::optional<TensorView> tp_send_counts;  // dispatch's tp_recv_counts when T == 2
    // V2 only (V1 ignores what it is given here, like the reserved activationScale, weightScale,
    // groupList and expandScales):
    std::optional<TensorView> assist_info;      // dispatch's assist_info
    std::optional<TensorView> x_active_mask;    // the mask dispatch got
    std::optional<TensorView> shared_expert_x;  // (BS, H) or (a, b, H) with a*b = BS; S = 0 only
    std::optional<TensorView> ori_x;            // (BS, H): copy and const experts' input
    std::optional<TensorView> const_alpha1;     // (Q,) or (Q, H), expandX's dtype
    std::optional<TensorView> const_alpha2;
    std::optional<TensorView> const_v;           // (Q, H)
    std::optional<TensorView> performance_info;  // (W) int64, added to
    // CombineAddRmsNorm: residual_x (BS, 1, H) and gamma (H,) given: x_out is the residual sum
    // (BS, 1, H) and y_out / rstd_out (BS, 1, H) / (BS, 1, 1) fp32 are written too.
    std::optional<TensorView> residual_x;
    std::optional<TensorView> gamma;
    float norm_eps = 1e-6f;
    std::optional<TensorView> y_out;
    std::optional<TensorView> rstd_out;
};

// What combine needs from a dispatch: views of dispatch's inputs and outputs (no copies). The
// tensors must stay alive and unchanged until combine returns. `group` and `call` say which
// dispatch made it: combine refuses a handle of another group (or of a group since destroyed
// and made again) with 561002.
struct DispatchHandle {
    TensorView expert_ids;
    TensorView expand_idx;
    TensorView ep_recv_counts;
    std::optional<TensorView> tp_recv_counts;
    std::optional<TensorView> assist_info;    // V2
    std::optional<TensorView> x_active_mask;  // V2: the mask dispatch got
    uint64_t group = 0;                       // the EP group's id (unique on the host)
    uint64_t call = 0;                        // this distributor's dispatch number (1, 2, ...)
};

namespace core {
class PendingCall;
}

// A dispatch or combine between its send half and its receive half (docs/contract.md §13). The
// send half (MoeDistributor::try_dispatch_send / try_combine_send) returned once this rank's
// record was published; wait() is the receive half: it waits for the peers, moves the rows and
// returns the call's outcome, bit for bit the blocking call's. Receive halves run in call order
// (an earlier pending call of the group first, else 361001 and this one stays pending). Until
// wait() returns, the call's tensors must stay alive and untouched. Destroying a pending call
// runs its receive half. Move-only.
class MOEDIST_API PendingCall {
public:
    PendingCall() noexcept;
    ~PendingCall();
    PendingCall(PendingCall&&) noexcept;
    PendingCall& operator=(PendingCall&&) noexcept;
    PendingCall(const PendingCall&) = delete;
    PendingCall& operator=(const PendingCall&) = delete;

    Status wait() noexcept;
    // A send half ran and its receive half has not completed.
    bool pending() const noexcept;

private:
    friend class MoeDistributor;
    std::unique_ptr<core::PendingCall> impl_;
};

// One rank's dispatch/combine endpoint: an EP communicator, an optional TP one, and a validated
// config. Cheap to copy. One call at a time per communicator: a call made while another thread's
// call on the same communicator runs fails at once (361001) and leaves that call alone.
class MOEDIST_API MoeDistributor {
public:
    // Validates `config` against the communicators; throws Error on failure.
    MoeDistributor(Communicator ep, std::optional<Communicator> tp, const MoeConfig& config);
    static Status create(Communicator ep,
                         std::optional<Communicator> tp,
                         const MoeConfig& config,
                         std::optional<MoeDistributor>* out);

    const MoeConfig& config() const { return config_; }

    // Throwing forms.
    DispatchHandle dispatch(const DispatchInputs& in, const DispatchOutputs& out);
    void combine(const DispatchHandle& handle,
                 TensorView expert_out,
                 TensorView expert_scales,
                 TensorView x_out);

    // Status forms (never throw).
    Status try_dispatch(const DispatchInputs& in, const DispatchOutputs& out) noexcept;
    Status try_combine(const CombineInputs& in, TensorView x_out) noexcept;

    // Split forms: the send half; `*pending` (which must not be pending) gets the call, whose
    // wait() is the receive half. At most 2 calls of a group are in flight: a third send half
    // fails at once (361001), as does a blocking call while one is in flight. On failure
    // nothing was published and *pending is left empty.
    Status try_dispatch_send(const DispatchInputs& in,
                             const DispatchOutputs& out,
                             PendingCall* pending) noexcept;
    Status try_combine_send(const CombineInputs& in,
                            TensorView x_out,
                            PendingCall* pending) noexcept;

private:
    MoeDistributor() = default;

    Communicator ep_;
    std::optional<Communicator> tp_;
    MoeConfig config_;
    uint64_t dispatches_ = 0;
};

}  // namespace moedist
