// The output shapes of one rank (docs/contract.md §1, §3, §5), in one place: MoeConfig::capacity_rows, the
// first phase (validate.cpp) and `moedist plan` all take them from here.
//
// Preconditions: `config.validate()` passes (so W − S ≥ 1), bs ≥ 0, top_k ≥ 1. Row counts are
// __int128 so that callers can compare them with the int32/int64 limits without overflow.
#pragma once

#include <cstdint>

#include "moedist/config.hpp"
#include "moedist/dtype.hpp"

namespace moedist::core {

// A (docs/contract.md §1, §10): rows one TP half of the rank can receive. A MoE rank:
// maxBs·W·min(L, K); a shared rank: ⌈maxBs·W / S⌉ (V1), maxBs·⌈W / R⌉ with R = S / N (V2).
// maxBs = globalBs / W, or bs when globalBs = 0.
__int128 capacity_rows(const MoeConfig& config, int64_t bs, int64_t top_k);
// The same for EP rank `rank` of the config's group.
__int128 capacity_rows_of(const MoeConfig& config, int64_t rank, int64_t bs, int64_t top_k);

// Whether dispatch writes dynamicScales (docs/contract.md §5): quantMode 2, 3, 4, or quantMode 0 with an
// 8-bit x (pre-quantized, its scales copied per row). Any quantMode >= 2 counts, so a façade
// looks at dynamicScales exactly when a valid mode needs it.
bool mode_makes_scales(QuantMode mode, DType x_dtype);

// dynamicScales dim 1 for a mode that makes scales: ⌈H/128⌉ (mode 3), 2·⌈⌈H/32⌉/2⌉ (mode 4, MX
// bytes padded to an even count); 0 when dynamicScales is 1-D (one per row: modes 0 and 2).
int64_t scale_columns(QuantMode mode, int64_t hidden);

// The least extents of every dispatch output (and of combine's inputs of the same meaning).
struct OutputShapes {
    int64_t tp = 1;                 // T
    int64_t local_experts = 1;      // experts on this rank: L, or 1 on a shared rank
    __int128 capacity = 0;          // A
    __int128 rows = 0;              // T·A: expandX dim 0 and dynamicScales dim 0, at least
    bool makes_scales = false;      // dynamicScales is written
    int64_t scale_columns = 0;      // dynamicScales dim 1 (0: 1-D)
    __int128 expand_idx = 0;        // BS·K entries of expandIdx (V1; V2 has none)
    __int128 assist_info = 0;       // V2: 3·A entries of assistInfo
    int64_t expert_token_nums = 1;  // expertTokenNums entries, at least
    int64_t ep_recv_counts = 0;     // epRecvCounts entries, at least: T·W·(L or 1)
    int64_t tp_recv_counts = 0;     // tpRecvCounts entries, at least: 2 when T = 2, else 0
    __int128 expand_scales = 0;     // expandScales entries, at least (when written): A
};

OutputShapes output_shapes(
    const MoeConfig& config, int64_t bs, int64_t top_k, int64_t hidden, DType x_dtype);

}  // namespace moedist::core
