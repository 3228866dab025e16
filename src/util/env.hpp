// Environment parameters, read once.
#pragma once

#include <cstdint>

namespace moedist::util {

// MOEDIST_TIMEOUT_MS (default 30000): the longest any wait for a peer may take.
int64_t timeout_ms();

// MOEDIST_ZERO_PADDING (default 1): 0 leaves expandX/dynamicScales/expandScales rows past the real
// count unwritten, as the device does, instead of zeroing them as SPEC §3 asks. Opt-in speed.
bool zero_padding();

// MOEDIST_DEBUG=WARN|INFO|TRACE (default off): 0 off, 1 warn, 2 info, 3 trace.
int debug_level();

}  // namespace moedist::util
