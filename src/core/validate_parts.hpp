// The first phase's V2 part (validate_v2.cpp), called by validate.cpp after the checks both
// families share.
#pragma once

#include <cstdint>

#include "core/ops.hpp"

namespace moedist::core {

// assistInfo (>= 3·A, written), xActiveMask, performanceInfo.
Status check_dispatch_v2(const MoeConfig& config,
                         const DispatchInputs& in,
                         const DispatchOutputs& out,
                         int64_t bs,
                         int64_t top_k,
                         int64_t capacity);

// assistInfo (>= 3·own rows), xActiveMask, performanceInfo, sharedExpertX, oriX, the const
// experts' tensors, and x: (BS, H), or AddRmsNorm's (BS, 1, H) xOut with its other tensors.
Status check_combine_v2(const MoeConfig& config,
                        const CombineInputs& in,
                        const TensorView& x_out,
                        int64_t bs,
                        int64_t top_k,
                        int64_t hidden,
                        int64_t own_rows);

// The V2 fields of a combine op (after check_combine_v2 passed).
void prepare_combine_v2(const CombineInputs& in, const TensorView& x_out, CombineOp* op);

}  // namespace moedist::core
