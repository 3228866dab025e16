// Ranks as processes of one host (or a mix of processes and threads): the group's control block
// is a memfd every member maps, memory is the members' shared-memory arenas (shm_arena.hpp),
// waits sleep on futexes in the block and notice a dead member through its pidfd.
//
// Bootstrap (any all-gather of a few bytes among the members: a Unix socket for rank tables,
// MPI, torch.distributed):
//   1. rank 0 creates and initializes the control memfd
//   2. all-gather {pid, rank 0: control fd and size}
//   3. every other rank opens /proc/<pid of rank 0>/fd/<fd> and maps it; each writes its pid
//      into its slot
//   4. all-gather {mapped} — nobody returns before every member can reach the block
// No file is created anywhere (nothing under /dev/shm); the block goes away with the last
// process that maps it.
#pragma once

#include "moedist/export.hpp"

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "transport/transport.hpp"

namespace moedist::transport {

// Every member calls it with its bytes (the same length on every rank); `all` receives the
// members' bytes in rank order.
using AllGather =
    std::function<Status(std::span<const std::byte> mine, std::vector<std::byte>* all)>;

// Joins rank `rank` of a group of `size` process ranks called `name` (the same on every member,
// unique on the host) and returns its endpoint, registered under `name` unless the caller
// registers it itself. Failures are 361001 with a message; a member that does not arrive makes
// the all-gather fail.
MOEDIST_API Status join_process_group(int rank,
                          int size,
                          const std::string& name,
                          const AllGather& all_gather,
                          std::shared_ptr<Transport>* out,
                          bool register_endpoint = true);

// A region another process of this host exposed (RegionRef of a process endpoint), mapped into
// this process (cached); null when it cannot be mapped. For tools that read a rank's tensors
// from outside its group (the harness's reference check).
const std::byte* map_foreign(const RegionRef& region);

// The RegionRef of [data, data + bytes) when it lies in this process's arena (false otherwise).
bool arena_region(const void* data, std::size_t bytes, RegionRef* out);

}  // namespace moedist::transport
