// A prepared dispatch or combine of one rank: validated attributes, tensor views and the
// communicators. Preparing (validate.cpp) is the first phase of the aclnn API; running
// (dispatch.cpp, combine.cpp) the second.
#pragma once

#include <optional>

#include "moedist/moedist.hpp"

namespace moedist::core {

struct DispatchOp {
    MoeConfig config;
    Communicator ep;
    std::optional<Communicator> tp;  // set when T == 2
    DispatchInputs in;
    DispatchOutputs out;
    int64_t num_tokens = 0;  // BS
    int64_t top_k = 0;       // K
    int64_t hidden = 0;      // H
};

struct CombineOp {
    MoeConfig config;
    Communicator ep;
    std::optional<Communicator> tp;
    CombineInputs in;
    TensorView x_out;
    int64_t num_tokens = 0;
    int64_t top_k = 0;
    int64_t hidden = 0;
};

// First phase: every check of SPEC §7 that needs no peer; fills `op` on success.
Status prepare_dispatch(const MoeConfig& config,
                        const Communicator& ep,
                        const std::optional<Communicator>& tp,
                        const DispatchInputs& in,
                        const DispatchOutputs& out,
                        DispatchOp* op);
Status prepare_combine(const MoeConfig& config,
                       const Communicator& ep,
                       const std::optional<Communicator>& tp,
                       const CombineInputs& in,
                       const TensorView& x_out,
                       CombineOp* op);

// Second phase: the exchange round, the single copy, the completion round.
Status run_dispatch(const DispatchOp& op);
Status run_combine(const CombineOp& op);

}  // namespace moedist::core
