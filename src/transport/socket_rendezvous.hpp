// An all-gather among the ranks of one host that find each other by a key: the first to bind
// the abstract Unix socket "\0moedist/<key>" is the hub, the others connect to it. Nothing
// appears in the file system, and the name goes away with the hub's socket, so a job that
// crashed leaves nothing for the next one to trip over. Several rounds may run on one
// rendezvous; every wait has the deadline given at open().
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "transport/transport.hpp"

namespace moedist::transport {

class SocketRendezvous {
public:
    // Joins as `rank` of `size` (361001 when the others are not all there by `deadline`, naming
    // the first missing rank; 361001 when two members claim one rank).
    static Status open(const std::string& key,
                       int rank,
                       int size,
                       Clock::time_point deadline,
                       std::unique_ptr<SocketRendezvous>* out);
    ~SocketRendezvous();
    SocketRendezvous(const SocketRendezvous&) = delete;
    SocketRendezvous& operator=(const SocketRendezvous&) = delete;

    // Every member's bytes (the same length everywhere) in rank order.
    Status all_gather(std::span<const std::byte> mine, std::vector<std::byte>* all);

private:
    SocketRendezvous(int rank, int size, Clock::time_point deadline);
    Status send_all(int fd, const void* data, std::size_t bytes);
    // The hub sends every connected member its verdict (and returns `status`); a member reads it.
    Status tell_members(const Status& status);
    Status hear_hub();
    Status receive_all(int fd, void* data, std::size_t bytes);

    int rank_;
    int size_;
    Clock::time_point deadline_;
    std::string key_;
    int listen_fd_ = -1;
    int hub_fd_ = -1;              // a member's connection to the hub
    int hub_rank_ = -1;            // the hub's rank (members)
    std::vector<int> member_fds_;  // the hub's connections, by rank (-1 for itself)
};

}  // namespace moedist::transport
