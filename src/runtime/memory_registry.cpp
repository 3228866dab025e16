// The registry of aclrtMalloc / aclrtMallocHost blocks (see memory_registry.hpp).
//
// Invariants (under Registry::mutex):
// - `blocks` holds every block allocate() returned and release() has not yet released; its key
//   is the block's base address, which no other block can have while it is held.
// - A block is live until release(); a released block with pins stays in `blocks` (not live,
//   memory still allocated) until unpin_blocks() drops its last pin, which frees it.
// - Generations are unique: a block allocated at the address of a released one differs from it.
#include "runtime/memory_registry.hpp"

#include "transport/shm_arena.hpp"

#include <cstdlib>
#include <map>
#include <mutex>

namespace moedist::runtime {
namespace {

struct Block {
    std::size_t size;       // bytes the caller asked for
    std::size_t rounded;    // bytes allocated: size rounded up to kAlignment, at least kAlignment
    bool host;              // aclrtMallocHost rather than aclrtMalloc
    uint64_t generation;    // unique per allocation
    int64_t pins = 0;       // operations running on it
    bool released = false;  // freed by the caller, memory kept for the pins
};

struct Registry {
    std::mutex mutex;
    std::map<uintptr_t, Block> blocks;
    uint64_t next_generation = 1;
};

Registry& registry() {
    static Registry* instance = new Registry();  // never destroyed: usable during static teardown
    return *instance;
}

// The held block whose allocation holds `address`, or end(). The caller holds the mutex.
std::map<uintptr_t, Block>::iterator holding_locked(Registry& r, uintptr_t address) {
    auto it = r.blocks.upper_bound(address);
    if (it == r.blocks.begin()) return r.blocks.end();
    --it;
    return address - it->first < it->second.rounded ? it : r.blocks.end();
}

BlockRef ref_of(uintptr_t base, const Block& block) { return {base, block.size, block.generation}; }

}  // namespace

BlockRef find_block(const void* address) {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = holding_locked(r, reinterpret_cast<uintptr_t>(address));
    if (it == r.blocks.end() || it->second.released) return {};
    return ref_of(it->first, it->second);
}

bool block_is_live(const BlockRef& ref) {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = r.blocks.find(ref.base);
    return it != r.blocks.end() && !it->second.released && it->second.generation == ref.generation;
}

std::size_t pin_blocks(const BlockRef* refs, std::size_t n) {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    for (std::size_t i = 0; i < n; ++i) {
        if (!refs[i].found()) continue;
        auto it = r.blocks.find(refs[i].base);
        if (it == r.blocks.end() || it->second.released ||
            it->second.generation != refs[i].generation) {
            return i;
        }
    }
    for (std::size_t i = 0; i < n; ++i) {
        if (refs[i].found()) ++r.blocks.find(refs[i].base)->second.pins;
    }
    return n;
}

void unpin_blocks(const BlockRef* refs, std::size_t n) {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    for (std::size_t i = 0; i < n; ++i) {
        if (!refs[i].found()) continue;
        auto it = r.blocks.find(refs[i].base);
        if (it == r.blocks.end() || it->second.generation != refs[i].generation) continue;
        if (--it->second.pins == 0 && it->second.released) {
            transport::arena_free(reinterpret_cast<void*>(it->first));
            r.blocks.erase(it);
        }
    }
}

namespace memory {

void* allocate(std::size_t size, bool host) {
    const std::size_t rounded =
        size == 0 ? kAlignment : (size + kAlignment - 1) / kAlignment * kAlignment;
    if (rounded < size) return nullptr;  // size + kAlignment - 1 wrapped around
    // From the shared-memory arena: peers in other processes read and write it in place.
    void* base = transport::arena_allocate(rounded);
    if (base == nullptr) return nullptr;
    Registry& r = registry();
    try {
        std::lock_guard<std::mutex> lock(r.mutex);
        r.blocks.emplace(reinterpret_cast<uintptr_t>(base),
                         Block{size, rounded, host, r.next_generation++});
    } catch (...) {
        transport::arena_free(base);
        return nullptr;
    }
    return base;
}

bool release(void* base, bool host) {
    Registry& r = registry();
    {
        std::lock_guard<std::mutex> lock(r.mutex);
        auto it = r.blocks.find(reinterpret_cast<uintptr_t>(base));
        if (it == r.blocks.end() || it->second.released || it->second.host != host) return false;
        if (it->second.pins > 0) {
            it->second.released = true;  // the last unpin frees it
            return true;
        }
        r.blocks.erase(it);
    }
    transport::arena_free(base);
    return true;
}

bool range_fits(const void* address, std::size_t count) {
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    const auto start = reinterpret_cast<uintptr_t>(address);
    auto it = holding_locked(r, start);
    if (it == r.blocks.end()) return true;
    if (it->second.released) return count == 0;
    const std::size_t at = start - it->first;
    return at <= it->second.size && count <= it->second.size - at;
}

}  // namespace memory
}  // namespace moedist::runtime
