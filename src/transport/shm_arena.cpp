#include "transport/shm_arena.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <vector>

#include "transport/agent.hpp"

namespace moedist::transport {
namespace {

constexpr std::size_t kAlignment = 64;
constexpr std::size_t kSegmentBytes = std::size_t{64} << 20;  // the usual segment
constexpr std::size_t kPage = std::size_t{2} << 20;  // segment size granularity
constexpr std::size_t kHolePage = 4096;                // what a punched hole returns

struct Segment {
    ArenaSegment seg;
    std::map<std::size_t, std::size_t> free;  // offset -> bytes, coalesced
};

struct Arena {
    std::mutex mutex;
    std::vector<Segment*> segments;                                // never destroyed
    std::map<uintptr_t, std::pair<Segment*, std::size_t>> blocks;  // address -> (segment, bytes)
    std::size_t in_use = 0;
};

Arena*& arena_slot() {
    static Arena* instance = nullptr;
    return instance;
}

void reset_in_child() {
    // The parent's segments stay mapped (the child may still hold pointers into them) but are
    // no longer the child's: new blocks come from segments of the child's own.
    arena_slot() = new Arena();
}

Arena& arena() {
    static std::once_flag once;
    std::call_once(once, [] {
        arena_slot() = new Arena();  // never destroyed: usable during static teardown
        pthread_atfork(nullptr, nullptr, &reset_in_child);
    });
    return *arena_slot();
}

Segment* new_segment(std::size_t at_least, uint32_t index) {
    const std::size_t bytes = std::max(kSegmentBytes, (at_least + kPage - 1) / kPage * kPage);
    util::UniqueFd fd = sealed_memory("moedist-arena", bytes);
    if (!fd.valid()) return nullptr;
    void* base = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (base == MAP_FAILED) return nullptr;
    agent_offer(AgentObject::kSegment, index, fd.get(), bytes);
    auto* segment = new Segment();
    segment->seg = {index, bytes, static_cast<std::byte*>(base)};
    segment->free.emplace(0, bytes);
    return segment;
}

// Gives back to the system every whole page of the free range [free_begin, free_end) that holds
// a byte of the range just freed, [freed_begin, freed_end) (pages freed earlier are holes already).
void punch(const Segment& s,
           std::size_t free_begin,
           std::size_t free_end,
           std::size_t freed_begin,
           std::size_t freed_end) {
    const std::size_t whole_begin = (free_begin + kHolePage - 1) / kHolePage * kHolePage;
    const std::size_t whole_end = free_end / kHolePage * kHolePage;
    const std::size_t begin = std::max(whole_begin, freed_begin / kHolePage * kHolePage);
    const std::size_t end =
        std::min(whole_end, (freed_end + kHolePage - 1) / kHolePage * kHolePage);
    if (end <= begin) return;
    // MADV_REMOVE frees the pages of a shared mapping and punches the hole in its memfd.
    madvise(s.seg.base + begin, end - begin, MADV_REMOVE);
}

// First fit in `s`; the offset of the block, or SIZE_MAX.
std::size_t take(Segment& s, std::size_t bytes) {
    for (auto it = s.free.begin(); it != s.free.end(); ++it) {
        if (it->second < bytes) continue;
        const std::size_t offset = it->first;
        const std::size_t left = it->second - bytes;
        s.free.erase(it);
        if (left > 0) s.free.emplace(offset + bytes, left);
        return offset;
    }
    return SIZE_MAX;
}

// Returns [offset, offset + bytes) to the free list, coalesced, and its pages to the system.
void give_back(Segment& s, std::size_t offset, std::size_t bytes) {
    const std::size_t freed_begin = offset, freed_end = offset + bytes;
    auto next = s.free.lower_bound(offset);
    if (next != s.free.end() && offset + bytes == next->first) {
        bytes += next->second;
        next = s.free.erase(next);
    }
    if (next != s.free.begin()) {
        auto prev = std::prev(next);
        if (prev->first + prev->second == offset) {
            prev->second += bytes;
            punch(s, prev->first, prev->first + prev->second, freed_begin, freed_end);
            return;
        }
    }
    s.free.emplace(offset, bytes);
    punch(s, offset, offset + bytes, freed_begin, freed_end);
}

}  // namespace

void* arena_allocate(std::size_t bytes) {
    const std::size_t rounded =
        std::max(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
    if (rounded < bytes) return nullptr;
    Arena& a = arena();
    std::lock_guard<std::mutex> lock(a.mutex);
    for (Segment* s : a.segments) {
        const std::size_t offset = take(*s, rounded);
        if (offset == SIZE_MAX) continue;
        std::byte* p = s->seg.base + offset;
        a.blocks.emplace(reinterpret_cast<uintptr_t>(p), std::make_pair(s, rounded));
        a.in_use += rounded;
        return p;
    }
    Segment* s = new_segment(rounded, static_cast<uint32_t>(a.segments.size()));
    if (s == nullptr) return nullptr;
    a.segments.push_back(s);
    const std::size_t offset = take(*s, rounded);
    std::byte* p = s->seg.base + offset;
    a.blocks.emplace(reinterpret_cast<uintptr_t>(p), std::make_pair(s, rounded));
    a.in_use += rounded;
    return p;
}

bool arena_free(void* p) {
    Arena& a = arena();
    std::lock_guard<std::mutex> lock(a.mutex);
    auto it = a.blocks.find(reinterpret_cast<uintptr_t>(p));
    if (it == a.blocks.end()) return false;
    Segment* s = it->second.first;
    const std::size_t bytes = it->second.second;
    give_back(*s, static_cast<std::size_t>(static_cast<std::byte*>(p) - s->seg.base), bytes);
    a.in_use -= bytes;
    a.blocks.erase(it);
    return true;
}

bool arena_find(const void* p, std::size_t bytes, ArenaSegment* segment) {
    Arena& a = arena();
    const auto* q = static_cast<const std::byte*>(p);
    std::lock_guard<std::mutex> lock(a.mutex);
    for (const Segment* s : a.segments) {
        if (q >= s->seg.base && q < s->seg.base + s->seg.bytes &&
            bytes <= static_cast<std::size_t>(s->seg.base + s->seg.bytes - q)) {
            *segment = s->seg;
            return true;
        }
    }
    return false;
}

bool arena_segment(uint32_t index, ArenaSegment* segment) {
    Arena& a = arena();
    std::lock_guard<std::mutex> lock(a.mutex);
    if (index >= a.segments.size()) return false;
    *segment = a.segments[index]->seg;
    return true;
}

std::size_t arena_bytes_in_use() {
    Arena& a = arena();
    std::lock_guard<std::mutex> lock(a.mutex);
    return a.in_use;
}

}  // namespace moedist::transport
