// Bulk copies and fills for outputs larger than the caches: non-temporal (streaming) stores skip
// the read-for-ownership of every destination line. Plain memcpy/memset below the threshold, in
// sanitizer builds (which cannot see intrinsic stores), and on CPUs without AVX2.
#pragma once

#include <cstddef>

namespace moedist::util {

// A call whose ranks write at least this many bytes in all (about the shared L3 of the machines
// moedist targets) writes its rows with streaming stores.
inline constexpr std::size_t kStreamingThresholdBytes = std::size_t{32} << 20;

void copy_bytes(void* dst, const void* src, std::size_t bytes, bool streaming);
void zero_bytes(void* dst, std::size_t bytes, bool streaming);

// Orders every streaming store before what follows (call before publishing completion).
void streaming_fence();

}  // namespace moedist::util
