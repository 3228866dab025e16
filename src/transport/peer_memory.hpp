// Memory of other processes of this host, as one group (or one tool) maps it: each segment a
// RegionRef names is obtained from its owner's agent (agent.hpp) once, checked (a sealed memory
// file of the announced size), mapped, and unmapped when this object goes — when the group is
// destroyed, so a long-lived rank does not keep the memory of peers that left. A region of this
// process's own arena is found by its segment index, never taken as an address.
#pragma once

#include "moedist/export.hpp"

#include <cstdint>
#include <map>
#include <mutex>
#include <utility>

#include "transport/transport.hpp"

namespace moedist::transport {

class MOEDIST_API PeerMemory {
public:
    PeerMemory() = default;
    ~PeerMemory();
    PeerMemory(const PeerMemory&) = delete;
    PeerMemory& operator=(const PeerMemory&) = delete;

    // [region.offset, region.offset + region.bytes) of the owner's segment in this process, or
    // null when the region does not lie inside its segment or the segment cannot be had (its
    // owner gone, refused, out of address space).
    const std::byte* map(const RegionRef& region);

    // Segments currently mapped (tests).
    std::size_t mapped_segments() const;

private:
    struct Mapping {
        std::byte* base = nullptr;
        uint64_t bytes = 0;
    };
    mutable std::mutex mutex_;
    std::map<std::pair<uint64_t, uint32_t>, Mapping> maps_;  // (owner nonce, segment)
};

// The RegionRef of [data, data + bytes) when it lies in this process's arena (false otherwise).
MOEDIST_API bool arena_region(const void* data, std::size_t bytes, RegionRef* out);

}  // namespace moedist::transport
