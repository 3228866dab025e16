// An all-gather among the ranks of one host that find each other by a key: the first to bind
// the abstract Unix socket "\0moedist/<key>/<i>" is the hub, the others connect to it. Nothing
// appears in the file system, and the name goes away with the hub's socket, so a job that
// crashed leaves nothing for the next one to trip over. Several rounds may run on one
// rendezvous; every wait has the deadline given at open().
//
// Abstract names have no permissions, so the name proves nothing: every connection's peer
// credentials do (SO_PEERCRED). A member talks only to a hub of its own effective user; a name
// held by another user's process is skipped (i = 0, 1, … up to kNames candidates, each tried a
// moment in case its hub is between bind and listen). The hub takes a claim only from a process
// of its user whose pid is the one the claim states, within a second of connecting; anything
// else (another user, garbage, silence, a rank out of range) is dropped with a log line and the
// rendezvous goes on. What makes the whole rendezvous fail, on every member, with the hub's
// verdict: a rank claimed twice (two jobs of one launch on one table), a claimant whose table
// differs (the rank table changed between ranks' starts), a member that never comes (named).
//
//   messages (SOCK_SEQPACKET, each one datagram): member → hub Claim, hub → member Verdict,
//   then per all_gather: member → hub its bytes, hub → member Verdict and everyone's bytes
//   (bytes in chunks of kChunk).
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "transport/transport.hpp"

namespace moedist::transport {

class SocketRendezvous {
public:
    static constexpr int kNames = 16;
    static constexpr std::size_t kChunk = 32 << 10;

    // Joins as `rank` of `size`; `fingerprint` is what every member must agree on (a hash of
    // the rank table it read). 361001 when the others are not all there by `deadline` (naming
    // the first missing rank), on a rank claimed twice, on a fingerprint that differs, or when
    // every candidate name is held by another user.
    static Status open(const std::string& key,
                       int rank,
                       int size,
                       uint64_t fingerprint,
                       Clock::time_point deadline,
                       std::unique_ptr<SocketRendezvous>* out);
    ~SocketRendezvous();
    SocketRendezvous(const SocketRendezvous&) = delete;
    SocketRendezvous& operator=(const SocketRendezvous&) = delete;

    // Every member's bytes (the same length everywhere) in rank order.
    Status all_gather(std::span<const std::byte> mine, std::vector<std::byte>* all);

private:
    SocketRendezvous(int rank, int size, Clock::time_point deadline);
    Status serve_claims(int listener, uint64_t fingerprint);
    Status send_bytes(int fd, const void* data, std::size_t bytes);
    Status receive_bytes(int fd, void* data, std::size_t bytes);
    // The hub sends every connected member its verdict (and returns `status`); a member reads it.
    Status tell_members(const Status& status);
    Status hear_hub();

    int rank_;
    int size_;
    Clock::time_point deadline_;
    std::string name_;             // the candidate name in use, for messages
    int listen_fd_ = -1;
    int hub_fd_ = -1;              // a member's connection to the hub
    std::vector<int> member_fds_;  // the hub's connections, by rank (-1 for itself)
};

}  // namespace moedist::transport
