// Ranks as processes of one host (or a mix of processes and threads): the group's control block
// is a sealed memfd every member maps, memory is the members' shared-memory arenas
// (shm_arena.hpp), waits sleep on futexes in the block and notice a dead member through its
// pidfd.
//
// Bootstrap (any all-gather of a few bytes among the members: a rank table's socket rendezvous,
// MPI, torch.distributed); every member checks every hello (bootstrap.hpp):
//   1. rank 0 creates the control block (a memfd sealed at its size) and offers it through its
//      agent (agent.hpp) under a random group id
//   2. all-gather hellos {rank, size, process (pid, nonce), name; rank 0: group id, block size}
//   3. every other rank asks rank 0's agent for the block, checks it (sealed, of exactly
//      control_bytes(size) for the size of *its* table, the id and size in its header) and maps
//      it; every rank takes a pidfd of every other member through that member's agent (proven to
//      be the member's process: a recycled pid is never taken for a peer) and writes its
//      process into its slot
//   4. all-gather confirmations — nobody returns before every member can reach the block
// No file is created anywhere (nothing under /dev/shm); the block goes away with the last
// process that maps it. Peers' memory is mapped per group and unmapped with it.
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

}  // namespace moedist::transport
