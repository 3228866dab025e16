// The memory floors `moedist bench` puts next to every operation, on the same threads in the same
// run: the physical limits of moving the same bytes without any routing.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moedist::harness {

// Non-temporal (streaming) stores of `bytes` of a non-zero pattern into dst: the write floor of a
// dispatch.
void nt_write(void* dst, std::size_t bytes);

// Reads every byte of src once, 64 bytes at a time: the read floor of a combine. Returns a value
// that depends on every byte (so the loads cannot be dropped).
uint64_t stream_read(const void* src, std::size_t bytes);

}  // namespace moedist::harness
