#include "transport/registry.hpp"

#include <unistd.h>

#include <map>
#include <mutex>

namespace moedist::transport {
namespace {

struct Entry {
    uint64_t id = 0;
    int size = 0;
    std::vector<std::weak_ptr<Transport>> endpoints;
    bool live() const {
        for (const auto& e : endpoints)
            if (!e.expired()) return true;
        return false;
    }
};

struct Registry {
    std::mutex mutex;
    std::map<std::string, Entry> by_name;
    uint64_t next_name = 0;
    uint64_t next_id = 0;
    void sweep() {
        for (auto it = by_name.begin(); it != by_name.end();)
            it = it->second.live() ? std::next(it) : by_name.erase(it);
    }
};

Registry& registry() {
    static Registry* instance = new Registry();  // never destroyed: safe during static teardown
    return *instance;
}

bool taken(Registry& reg, const std::string& name) {
    auto it = reg.by_name.find(name);
    return it != reg.by_name.end() && it->second.live();
}

}  // namespace

std::string unique_group_name(const std::string& wanted, const std::string& fallback_prefix) {
    Registry& reg = registry();
    std::lock_guard<std::mutex> lock(reg.mutex);
    reg.sweep();
    if (wanted.empty()) {
        std::string name;
        do {
            name = fallback_prefix + std::to_string(reg.next_name++);
        } while (taken(reg, name));
        return name;
    }
    std::string name = wanted;
    for (uint64_t k = 1; taken(reg, name); ++k) name = wanted + "#" + std::to_string(k);
    return name;
}

void register_group(const std::string& name,
                    uint64_t id,
                    int size,
                    const std::vector<std::shared_ptr<Transport>>& endpoints) {
    Registry& reg = registry();
    std::lock_guard<std::mutex> lock(reg.mutex);
    Entry& entry = reg.by_name[name];
    if (entry.id != id || !entry.live()) {
        entry = Entry{};
        entry.id = id;
        entry.size = size;
        entry.endpoints.resize(static_cast<std::size_t>(size));
    }
    for (std::size_t r = 0; r < endpoints.size() && r < entry.endpoints.size(); ++r) {
        if (endpoints[r]) entry.endpoints[r] = endpoints[r];
    }
}

std::shared_ptr<Transport> find_endpoint(const std::string& name, int rank, int* size) {
    Registry& reg = registry();
    std::lock_guard<std::mutex> lock(reg.mutex);
    auto it = reg.by_name.find(name);
    if (it == reg.by_name.end() || !it->second.live()) return nullptr;
    *size = it->second.size;
    if (rank < 0 || rank >= it->second.size) return nullptr;
    return it->second.endpoints[static_cast<std::size_t>(rank)].lock();
}

std::shared_ptr<Transport> find_endpoint_by_id(uint64_t id, int rank) {
    Registry& reg = registry();
    std::lock_guard<std::mutex> lock(reg.mutex);
    for (auto& [name, entry] : reg.by_name) {
        if (entry.id != id) continue;
        if (rank < 0 || rank >= entry.size) return nullptr;
        return entry.endpoints[static_cast<std::size_t>(rank)].lock();
    }
    return nullptr;
}

uint64_t new_group_id() {
    Registry& reg = registry();
    std::lock_guard<std::mutex> lock(reg.mutex);
    return (static_cast<uint64_t>(getpid()) << 32) | (++reg.next_id & 0xFFFFFFFFu);
}

}  // namespace moedist::transport

namespace moedist::transport {

std::span<const int> Transport::node_ranks(int /*node*/) const {
    // One node: every rank. Built once per size (the spans stay valid).
    static std::mutex mutex;
    static std::map<int, std::vector<int>> all;
    std::lock_guard<std::mutex> lock(mutex);
    auto& ranks = all[size()];
    if (ranks.empty())
        for (int r = 0; r < size(); ++r) ranks.push_back(r);
    return ranks;
}

Status Transport::exchange(std::span<const std::span<const std::byte>> send,
                           std::span<const std::span<std::byte>> recv,
                           Clock::time_point /*deadline*/) {
    for (const auto& s : send)
        if (!s.empty()) return {Code::kRuntime, "a one-node group must exchange no bytes"};
    for (const auto& r : recv)
        if (!r.empty()) return {Code::kRuntime, "a one-node group must exchange no bytes"};
    return Status::Ok();
}

}  // namespace moedist::transport
