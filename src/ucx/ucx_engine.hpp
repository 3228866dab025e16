// The ucx engine: a group across hosts without a launcher. Each host's ranks form a process
// group (shared memory, transport/process_group.hpp), exactly as on one host; the records and
// flags of the two rounds, and the bytes between nodes (Transport::exchange), travel as UCX
// tagged messages between the ranks' workers (ucp). The core's inter-node algorithm
// (core/remote.cpp) runs over it unchanged, as it does over the mpi engine.
//
// Joining: the caller says which node (host) every rank is on, hands a node-local all-gather (the
// host's ranks only) and a global one (every rank: host_rendezvous.hpp, or a torch.distributed
// group's). The node group forms first; then every rank's worker address (and whether its node
// formed) crosses in one global all-gather; then each rank opens an endpoint to every other.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "transport/transport.hpp"

namespace moedist::ucx {

using AllGather =
    std::function<Status(std::span<const std::byte> mine, std::vector<std::byte>* all)>;

struct HostJoin {
    std::string name;  // the group's, the same on every rank
    int rank = -1;
    std::vector<int>
        node_of;  // every rank's node, 0..nodes-1, each node's ranks consecutive or not
    AllGather node_all_gather;    // among this node's ranks, in their order
    AllGather global_all_gather;  // among all ranks; blobs of at most kMaxBlobBytes
};

constexpr std::size_t kMaxBlobBytes = 4096;

// Forms the group. Every rank that reaches the global all-gather fails alike when one of them
// could not form its node or open UCX (naming it).
Status join_hosts(const HostJoin& join, std::shared_ptr<transport::Transport>* out);

// What makes two processes able to share memory: MOEDIST_SERVER_ID when set, else this boot of
// this machine and this network namespace (whose abstract Unix sockets a node group's members
// reach each other by). At most kHostIdBytes.
constexpr std::size_t kHostIdBytes = 96;
std::string host_identity();

// Communicator::join_processes over any all-gather: the members' host identities travel with
// the first round; on one host a process group as ever (two rounds), across hosts join_hosts with
// that all-gather (the node rounds are global rounds, each rank keeping its node's part; three
// more rounds). `name` is registered for Communicator::find.
Status join_over(int rank,
                 int size,
                 const std::string& name,
                 const AllGather& all_gather,
                 std::shared_ptr<transport::Transport>* out);

}  // namespace moedist::ucx
