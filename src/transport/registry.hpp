// The live groups of this process, by name (as HcclGetCommName reports it) and by id, with the
// endpoints this process holds (every rank of a thread group; the ranks it joined of a process
// group). Entries go away with the last endpoint.
#pragma once

#include "moedist/export.hpp"

#include <memory>
#include <string>
#include <vector>

#include "transport/transport.hpp"

namespace moedist::transport {

// A name no live group of this process has: `wanted` if free, else `wanted#k`; `fallback_prefix`
// + a counter when `wanted` is empty.
std::string unique_group_name(const std::string& wanted, const std::string& fallback_prefix);

// Registers endpoints[r] as rank r of the group `name` (null entries: ranks held elsewhere).
// Endpoints of a group already registered under this id are added to it.
MOEDIST_API void register_group(const std::string& name,
                    uint64_t id,
                    int size,
                    const std::vector<std::shared_ptr<Transport>>& endpoints);

// The endpoint of `rank` in the group called `name`, or null; *size gets the group's size.
std::shared_ptr<Transport> find_endpoint(const std::string& name, int rank, int* size);

// The endpoint of `rank` in the group with this id, or null.
std::shared_ptr<Transport> find_endpoint_by_id(uint64_t id, int rank);

// A fresh id, unique among groups of every process of this host (pid and a counter).
MOEDIST_API uint64_t new_group_id();

}  // namespace moedist::transport
