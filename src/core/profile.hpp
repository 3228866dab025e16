// The product-profile rules (docs/contract.md §7): a table of the A2/A3 product limits of Ascend's documentation and the A3 V1 kernel's
// tiling limits, applied in the first phase after the generic checks of validate.cpp. The table
// is the single source of docs/validation.md's profile section (`moedist plan --rules`).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "moedist/config.hpp"
#include "moedist/dtype.hpp"
#include "moedist/profile.hpp"

namespace moedist::core {

// What the rules look at: the attributes and the shapes of one first phase.
struct ProfileFacts {
    MoeConfig config;
    bool combine = false;
    int64_t num_tokens = 0;                   // BS
    int64_t hidden = 0;                       // H
    int64_t top_k = 0;                        // K
    DType x_dtype = DType::kBFloat16;         // dispatch x; combine expandX
    DType expand_x_dtype = DType::kBFloat16;  // expandX of either operation
    bool has_scales = false;
    bool has_x_active_mask = false;
    int64_t tp_counts_len = -1;  // tpRecvCounts / tpSendCounts dim 0 when T = 2, else -1
    int32_t expand_idx_ndim = 1;  // combine: expandIdx's dims (1, or 2 for a (BS, K) tensor)
    std::string group_tp;        // the groupTp name given ("" when none)
    HcclBufferEnv hccl;
    // V2 (docs/contract.md §10.10)
    int op_version = 4;              // the aclnn entry point: 2, 3 or 4 (C++ and Python: 4)
    int mask_ndim = 0;               // xActiveMask: 0 none, 1 (BS,), 2 (BS, K)
    bool weighted = true;            // combine: expertScales not empty
    bool has_expert_scales = false;  // dispatch: expertScales given
    bool has_expand_scales = false;  // dispatch: expandScales given
    bool has_tp_counts = true;       // dispatch: tpRecvCounts given
    bool has_performance_info = false;
    bool reserved_given = false;     // combine: activationScale, weightScale or groupList given
    bool add_rms_norm = false;
    int64_t assist_len = -1;         // assistInfo dim 0
};

inline constexpr uint32_t profile_bit(Soc soc) { return 1u << static_cast<uint32_t>(soc); }
inline constexpr uint32_t kA2Only = 1u << 1;
inline constexpr uint32_t kA3Only = 1u << 2;
inline constexpr uint32_t kA2A3 = kA2Only | kA3Only;

struct ProfileRule {
    const char* id;                              // stable name used by tests and docs
    uint32_t profiles;                           // profile_bit()s the rule applies to
    Code code;                                   // its code when it fails
    const char* source;                          // the documentation line or kernel rule it comes from
    const char* requirement;                     // as the docs table shows it
    Status (*check)(const ProfileFacts& facts);  // Ok, or the failure with its message
};

// The rules of an operator family: V1's (profile.cpp) or the V2 family's (profile_v2.cpp).
std::span<const ProfileRule> profile_rules(Api api = Api::kV1);
std::span<const ProfileRule> profile_rules_v2();

// The profile of a call: config.soc, else MOEDIST_SOC; an unknown MOEDIST_SOC is 561002.
Status resolve_soc(const MoeConfig& config, Soc* soc);

// Every rule of `soc` in table order; the first failing one's status (its message names the
// parameter, the profile, the expectation and the actual value).
Status check_profile(Soc soc, const ProfileFacts& facts);

// The HCCL_BUFFSIZE (MB) the profile's buffer rules need at least; 0 for generic.
int64_t hccl_buffsize_needed_mb(Soc soc, const ProfileFacts& facts);

}  // namespace moedist::core
