// A prepared dispatch or combine of one rank: validated attributes, tensor views and the
// communicators. Preparing (validate.cpp) is the first phase of the aclnn API; running
// (dispatch.cpp, combine.cpp) the second.
#pragma once

#include <optional>
#include <string>

#include "core/row_format.hpp"
#include "moedist/moedist.hpp"

namespace moedist::core {

struct DispatchOp {
    MoeConfig config;
    RowFormat format;  // how tokens become expandX rows (decided once, in the first phase)
    Communicator ep;
    std::optional<Communicator> tp;  // set when T == 2
    DispatchInputs in;
    DispatchOutputs out;
    int64_t num_tokens = 0;     // BS
    int64_t top_k = 0;          // K
    int64_t hidden = 0;         // H
    bool zero_padding = false;  // docs/contract.md §3 tails zeroed (config.zero_padding or the environment)
    // Set: the call fails on every rank with it before any rank reads a tensor (the tensors'
    // data pointers are null then; e.g. a block freed between the two phases).
    Status pre_error;
};

struct CombineOp {
    MoeConfig config;
    Communicator ep;
    std::optional<Communicator> tp;
    CombineInputs in;
    TensorView x_out;  // (BS, H); AddRmsNorm's (BS, 1, H) xOut read as (BS, H)
    int64_t num_tokens = 0;
    int64_t top_k = 0;
    int64_t hidden = 0;
    bool zero_padding = false;  // rows of inactive tokens zeroed (V2)
    bool weighted = true;       // V2: an empty expertScales makes every weight 1
    // V2 extras as (rows, columns) views, data null when absent: sharedExpertX (BS, H),
    // AddRmsNorm's residualX and yOut (BS, H), rstdOut (BS,) and gamma (H,).
    TensorView shared_x;
    bool add_rms_norm = false;
    TensorView residual;
    TensorView gamma;
    TensorView y_out;
    TensorView rstd_out;
    Status pre_error;  // as DispatchOp::pre_error
};

// What the first phase sees beside the attributes and tensors (for the profile rules).
struct CallExtras {
    std::string group_tp;               // the groupTp name given ("" when none)
    bool x_active_mask = false;         // a (reserved) xActiveMask was given
    std::optional<HcclBufferEnv> hccl;  // unset: HCCL_BUFFSIZE & co. from the environment
    int op_version = 4;                 // V2 family: the aclnn entry point (2, 3, 4)
    bool reserved_given = false;        // combine V2: activationScale/weightScale/groupList given
};

// The first phase without communicators: the attributes, every tensor, then the profile
// (config.soc or MOEDIST_SOC). `moedist plan` runs these on shapes alone.
Status check_dispatch_call(const MoeConfig& config,
                           const DispatchInputs& in,
                           const DispatchOutputs& out,
                           const CallExtras& extras);
Status check_combine_call(const MoeConfig& config,
                          const CombineInputs& in,
                          const TensorView& x_out,
                          const CallExtras& extras);

// First phase: every check of docs/contract.md §7 that needs no peer; fills `op` on success.
Status prepare_dispatch(const MoeConfig& config,
                        const Communicator& ep,
                        const std::optional<Communicator>& tp,
                        const DispatchInputs& in,
                        const DispatchOutputs& out,
                        const CallExtras& extras,
                        DispatchOp* op);
Status prepare_combine(const MoeConfig& config,
                       const Communicator& ep,
                       const std::optional<Communicator>& tp,
                       const CombineInputs& in,
                       const TensorView& x_out,
                       const CallExtras& extras,
                       CombineOp* op);

// Second phase: the exchange round, the single copy, the completion round.
Status run_dispatch(const DispatchOp& op);
Status run_combine(const CombineOp& op);

}  // namespace moedist::core
