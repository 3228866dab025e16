// moedist/profile.hpp — product profiles (docs/contract.md §7): which limits the first phase applies on top
// of what the algorithm can serve.
//   generic  every configuration moedist can run (the default)
//   A2       the Atlas A2 product limits of Ascend's documentation
//   A3       the Atlas A3 product limits of Ascend's documentation and the A3 V1 kernel's tiling limits
// MOEDIST_SOC=generic|A2|A3 (case-insensitive) picks the profile for calls whose MoeConfig leaves
// `soc` unset; HCCL_BUFFSIZE (MB, default 200), HCCL_INTRA_PCIE_ENABLE and HCCL_INTRA_ROCE_ENABLE
// feed the A2/A3 buffer-size rules.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace moedist {

enum class Soc : int32_t { kGeneric = 0, kA2 = 1, kA3 = 2 };

inline constexpr const char* soc_name(Soc soc) {
    switch (soc) {
        case Soc::kGeneric:
            return "generic";
        case Soc::kA2:
            return "A2";
        case Soc::kA3:
            return "A3";
    }
    return "?";
}

// "generic", "A2", "A3" in any case; nullopt for anything else.
inline std::optional<Soc> parse_soc(std::string_view text) {
    auto lower = [](char c) {
        return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    };
    auto equals = [&](std::string_view name) {
        if (name.size() != text.size()) return false;
        for (std::size_t i = 0; i < name.size(); ++i)
            if (lower(text[i]) != name[i]) return false;
        return true;
    };
    if (equals("generic")) return Soc::kGeneric;
    if (equals("a2")) return Soc::kA2;
    if (equals("a3")) return Soc::kA3;
    return std::nullopt;
}

// The communication-buffer environment the A2/A3 rules read (CANN's variables).
struct HcclBufferEnv {
    int64_t buffsize_mb = 200;  // HCCL_BUFFSIZE; -1 when set to something not a positive integer
    bool intra_pcie = false;    // HCCL_INTRA_PCIE_ENABLE=1 and HCCL_INTRA_ROCE_ENABLE=0
};

}  // namespace moedist
