// The blocks of aclrtMalloc / aclrtMallocHost as the façade checks them: a tensor's view must lie
// inside the block its memory came from, and that block must still be live when an operation
// runs. Memory the runtime did not allocate has no block; its bounds cannot be checked.
//
// A pinned block outlives aclrtFree: the free succeeds at once (the block is no longer live for
// lookups) and its memory is released when the last pin goes, so an operation that pinned its
// tensors' blocks never touches released memory, whatever other threads free meanwhile.
#pragma once

#include <cstddef>

#include "runtime/objects.hpp"

namespace moedist::runtime {

// The live block whose allocation holds `address` (its requested bytes and the alignment padding
// after them); not found otherwise. Thread-safe.
BlockRef find_block(const void* address);

// True when the block `ref` names (base and generation) is still allocated. Thread-safe.
bool block_is_live(const BlockRef& ref);

// Pins the block of every found ref of refs[0, n) and returns n; when one of them is no longer
// live, pins nothing and returns the index of the first such ref. Thread-safe.
std::size_t pin_blocks(const BlockRef* refs, std::size_t n);

// Releases the pins pin_blocks() took (call only after it returned n). Thread-safe.
void unpin_blocks(const BlockRef* refs, std::size_t n);

}  // namespace moedist::runtime

namespace moedist::runtime::memory {

// Bytes of the alignment every block has (and the least a block occupies).
constexpr std::size_t kAlignment = 64;

// A new block of `size` bytes (a distinct block of kAlignment bytes for 0), registered as
// aclrtMallocHost memory when `host`; nullptr when the memory is not available.
void* allocate(std::size_t size, bool host);

// Frees a block allocate() returned with the same `host`: false (nothing done) when `base` is
// not such a live block. A pinned block is released when its last pin goes.
bool release(void* base, bool host);

// False when [address, address + count) starts inside a live or pinned block and does not end
// inside it; true otherwise (memory the runtime did not allocate cannot be checked).
bool range_fits(const void* address, std::size_t count);

}  // namespace moedist::runtime::memory
