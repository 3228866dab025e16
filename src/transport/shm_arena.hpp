// This process's shared-memory arena: device memory of the CPU runtime (aclrtMalloc) and the
// scratch of process endpoints come from memfd segments mapped MAP_SHARED, so a rank in another
// process of the host can map them and read or write the bytes in place. A peer gets a segment
// only from this process's agent (agent.hpp), by its index, as a descriptor sealed against
// shrinking and growing. Nothing is ever created under /dev/shm: a memfd goes away with the last
// process that maps it.
//
//   segment k: [ block | block | free | block | ... ]   64-byte aligned blocks, first fit,
//                                                       neighbours coalesce on free
//
// Segments stay mapped while the process lives (peers may hold mappings of them), but memory
// that is freed goes back to the system: every whole page of a freed range is punched out of its
// segment (it reads as zero afterwards, in every process that maps it).
//
// After fork() the child starts an arena of its own (it allocates nothing in its parent's
// segments); memory it inherited is treated as memory the arena did not allocate.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moedist::transport {

struct ArenaSegment {
    uint32_t index = 0;  // as peers name it (RegionRef::segment)
    std::size_t bytes = 0;
    std::byte* base = nullptr;
};

// A block of at least `bytes` (64-byte aligned, zero-filled the first time its pages are used),
// or null when the system refuses the memory.
void* arena_allocate(std::size_t bytes);

// Returns a block arena_allocate() gave; false for anything else (nothing is touched).
bool arena_free(void* p);

// The segment [p, p + bytes) lies in, when it lies wholly inside one of this process's segments.
bool arena_find(const void* p, std::size_t bytes, ArenaSegment* segment);

// Segment `index` of this process's arena (false when there is none).
bool arena_segment(uint32_t index, ArenaSegment* segment);

// Bytes currently handed out (for tests and the bench's memory report).
std::size_t arena_bytes_in_use();

}  // namespace moedist::transport
