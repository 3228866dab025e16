// moedist/config.hpp — the attributes of a dispatch/combine pair (docs/contract.md §1, §2).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "moedist/dtype.hpp"
#include "moedist/export.hpp"
#include "moedist/profile.hpp"
#include "moedist/status.hpp"

namespace moedist {

// The least shapes of one rank's dispatch outputs (and of combine's inputs of the same meaning)
// for a config, BS, K, H and x's dtype: allocate these and dispatch accepts them.
struct DispatchShapes {
    int64_t capacity = 0;           // A: rows one TP half of this rank can receive
    int64_t expand_x_rows = 0;      // T·A: expandX (T·A, H); dynamicScales (T·A[, columns])
    int64_t hidden = 0;             // H
    bool makes_scales = false;      // dispatch writes dynamicScales (quantMode 2, 3, 4, or 8-bit x)
    int64_t scale_columns = 0;      // dynamicScales dim 1 (0: it is 1-D)
    int64_t expand_idx = 0;         // BS·K (V1; V2: 0, no expandIdx)
    int64_t assist_info = 0;        // V2: 3·A (assistInfo's triples), else 0
    int64_t expert_token_nums = 0;  // L, or 1 on a shared rank
    int64_t ep_recv_counts = 0;     // T·W·(L or 1)
    int64_t tp_recv_counts = 0;     // 2 when T = 2, else 0 (not written)
    int64_t expand_scales = 0;      // A (written when expertScales and expandScales are given)
};

enum class QuantMode : int64_t { kNone = 0, kStatic = 1, kPerToken = 2, kPerGroup = 3, kMx = 4 };

// Which operator family's semantics a call follows (docs/contract.md §10): V1 is
// aclnnMoeDistributeDispatch/Combine; V2 the V2–V4 family torch_npu's *_v2 functions reach
// (masks, assist triples instead of expandIdx, up to 4 shared experts placed by the replica rule,
// zero/copy/const experts, unweighted combine, AddRmsNorm).
enum class Api : int64_t { kV1 = 1, kV2 = 2 };

// Where dispatch puts block (local expert e, source rank s) in expandX, and where combine finds
// it (docs/contract.md §12.3):
//   kPacked        Ascend's: blocks back to back, e-major, epRecvCounts their ends.
//   kExpertPadded  DeepEP's low-latency [L, W·maxBs, H]: local expert e's rows start at row
//                  e·W·maxBs, its blocks (by source) back to back; rows past its count untouched.
//                  V2, no shared ranks, no TP; A = L·W·maxBs; a sender's rows to one expert ≤
//                  maxBs.
enum class RowLayout : int64_t { kPacked = 0, kExpertPadded = 1 };

// Attribute names follow the aclnn parameters; every field must agree on all ranks of a group
// except the rank ids.
struct MOEDIST_API MoeConfig {
    // Bounds that keep every row count inside int32 (epRecvCounts) and every product inside int64.
    static constexpr int64_t kMaxWorldSize = int64_t{1} << 16;
    static constexpr int64_t kMaxExperts = int64_t{1} << 20;
    static constexpr int64_t kMaxGlobalBs = int64_t{1} << 31;

    int64_t ep_world_size = 0;  // W
    int64_t ep_rank_id = 0;
    int64_t moe_expert_num = 0;  // E
    int64_t tp_world_size = 0;   // 0 or 1: no TP; 2: TP AllGatherV (needs L == 1)
    int64_t tp_rank_id = 0;
    int64_t expert_shard_type = 0;  // must be 0
    int64_t shared_expert_num = 0;  // V1: 0 or 1 (1 when S > 0); V2: N in [1, 4] with S % N = 0
                                    // when S > 0 (torch_npu's default is 1)
    int64_t shared_expert_rank_num = 0;  // S
    int64_t quant_mode = 0;              // QuantMode
    int64_t global_bs = 0;               // 0 (equal BS) or maxBs * W
    int64_t expert_token_nums_type = 0;  // 0 prefix sums, 1 counts (torch_npu's default is 1)
    int64_t comm_quant_mode = 0;         // combine: 0 or 2 (int8 return path)
    Api api = Api::kV1;
    RowLayout row_layout = RowLayout::kPacked;
    // V2: special experts with ids [E, E + Z) zero, [E + Z, E + Z + C) copy, then Q const.
    int64_t zero_expert_num = 0;   // Z
    int64_t copy_expert_num = 0;   // C
    int64_t const_expert_num = 0;  // Q
    // V2: the communication algorithm named by the call ("", "0", "fullmesh", "fullmesh_v1",
    // "fullmesh_v2", "hierarchy"); every value gives the same results.
    std::string comm_alg;
    // Product profile of the first phase; unset: MOEDIST_SOC (default generic). Not compared
    // across ranks.
    std::optional<Soc> soc;
    // Tails (docs/contract.md §3: expandX rows, dynamicScales and expandScales entries past the
    // real ones): true zeroes them up to each tensor's end, false leaves them untouched (the
    // device's behaviour); unset: MOEDIST_ZERO_PADDING=1 at the first phase asks for zeroing.
    // Not compared across ranks.
    std::optional<bool> zero_padding;
    // The longest wait for a peer in this config's calls, in milliseconds; unset:
    // MOEDIST_TIMEOUT_MS (default 30000). Not compared across ranks.
    std::optional<int64_t> timeout_ms;

    int64_t tp_size() const { return tp_world_size > 1 ? tp_world_size : 1; }         // T
    int64_t moe_rank_num() const { return ep_world_size - shared_expert_rank_num; }   // W - S
    int64_t local_moe_expert_num() const { return moe_expert_num / moe_rank_num(); }  // L
    bool is_shared_rank() const { return ep_rank_id < shared_expert_rank_num; }
    bool v2() const { return api == Api::kV2; }
    bool expert_padded() const { return row_layout == RowLayout::kExpertPadded; }
    // quant_mode as the enum every check compares with (validate() bounds it to [0, 4]).
    QuantMode quant() const { return static_cast<QuantMode>(quant_mode); }
    // N after the fix-up: the shared experts (V1: 1 when S > 0; V2: sharedExpertNum, 0 when S = 0).
    int64_t shared_experts() const {
        if (shared_expert_rank_num == 0) return 0;
        return v2() ? shared_expert_num : 1;
    }
    int64_t special_expert_num() const {
        return zero_expert_num + copy_expert_num + const_expert_num;
    }
    // Number of experts hosted on this rank: 1 on a shared rank, L on a MoE rank.
    int64_t local_expert_num() const { return is_shared_rank() ? 1 : local_moe_expert_num(); }
    // maxBs (docs/contract.md §1; integer division); `num_tokens` is this rank's BS (used when
    // global_bs == 0).
    int64_t max_bs(int64_t num_tokens) const {
        return global_bs == 0 ? num_tokens : global_bs / ep_world_size;
    }
    // A (docs/contract.md §1): rows one TP half of this rank can receive.
    int64_t capacity_rows(int64_t num_tokens, int64_t top_k) const;
    // Every dispatch output's least shape (call on a config that validate() accepts; counts past
    // int64 saturate).
    DispatchShapes shapes(int64_t num_tokens,
                          int64_t top_k,
                          int64_t hidden,
                          DType x_dtype = DType::kBFloat16) const;

    // Checks the attributes alone (no tensors) for the generic profile.
    Status validate() const;
};

}  // namespace moedist
