// Environment parameters, read once.
#pragma once

#include "moedist/export.hpp"

#include <cstdint>
#include <string>

#include "moedist/profile.hpp"

namespace moedist::util {

// MOEDIST_TIMEOUT_MS (default 30000): the longest any wait for a peer may take.
MOEDIST_API int64_t timeout_ms();

// MOEDIST_ZERO_PADDING, read at every call (each first phase): "1" zeroes the tails of expandX,
// dynamicScales and expandScales (SPEC §3); anything else, or unset, leaves them untouched as the
// device does (the default).
bool zero_padding();

// MOEDIST_DEBUG=WARN|INFO|TRACE (default off): 0 off, 1 warn, 2 info, 3 trace.
MOEDIST_API int debug_level();

// MOEDIST_SOC (default generic): the profile of calls that leave MoeConfig::soc unset. An
// unknown value makes every first phase fail (561002) naming it in `text`.
struct SocSetting {
    std::optional<Soc> soc;
    std::string text;
};
const SocSetting& soc_setting();

// HCCL_BUFFSIZE, HCCL_INTRA_PCIE_ENABLE, HCCL_INTRA_ROCE_ENABLE (the A2/A3 buffer rules).
const HcclBufferEnv& hccl_buffer_env();

}  // namespace moedist::util
