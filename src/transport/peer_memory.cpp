#include "transport/peer_memory.hpp"

#include <sys/mman.h>

#include "transport/agent.hpp"
#include "transport/shm_arena.hpp"
#include "util/env.hpp"

namespace moedist::transport {
namespace {

bool inside(const RegionRef& region, uint64_t segment_bytes) {
    return region.segment_bytes == segment_bytes && region.offset <= segment_bytes &&
           region.bytes <= segment_bytes - region.offset;
}

}  // namespace

PeerMemory::~PeerMemory() {
    for (auto& [key, m] : maps_) munmap(m.base, m.bytes);
}

const std::byte* PeerMemory::map(const RegionRef& region) {
    if (region.owner == self_process()) {
        ArenaSegment seg;
        if (!arena_segment(region.segment, &seg) || !inside(region, seg.bytes)) return nullptr;
        return seg.base + region.offset;
    }
    if (region.owner.nonce == 0 || region.segment_bytes == 0) return nullptr;
    std::lock_guard<std::mutex> lock(mutex_);
    const auto key = std::make_pair(region.owner.nonce, region.segment);
    auto it = maps_.find(key);
    if (it == maps_.end()) {
        util::UniqueFd fd;
        const auto deadline = Clock::now() + std::chrono::milliseconds(util::timeout_ms());
        if (!agent_fetch(region.owner,
                         AgentObject::kSegment,
                         region.segment,
                         region.segment_bytes,
                         deadline,
                         &fd)
                 .ok())
            return nullptr;
        void* p = mmap(nullptr, region.segment_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
        if (p == MAP_FAILED) return nullptr;
        it = maps_.emplace(key, Mapping{static_cast<std::byte*>(p), region.segment_bytes}).first;
    }
    if (!inside(region, it->second.bytes)) return nullptr;
    return it->second.base + region.offset;
}

std::size_t PeerMemory::mapped_segments() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return maps_.size();
}

bool arena_region(const void* data, std::size_t bytes, RegionRef* out) {
    ArenaSegment seg;
    if (!arena_find(data, bytes, &seg)) return false;
    *out = RegionRef{};
    out->owner = self_process();
    out->segment = seg.index;
    out->segment_bytes = seg.bytes;
    out->offset = static_cast<uint64_t>(static_cast<const std::byte*>(data) - seg.base);
    out->bytes = bytes;
    return true;
}

}  // namespace moedist::transport
