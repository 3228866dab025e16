// The agent of this process: how processes of one host hand each other shared memory without
// trusting anyone else on the host.
//
// Every process that shares memory with peers (a process group, the shared-memory arena) runs
// one agent, started on first use: a thread serving the descriptors of the memory this process
// offers (its arena segments, the control blocks of its groups) over an abstract Unix socket,
//
//   "\0moedist-agent/<euid>/<pid>/<nonce as 16 hex digits>"     SOCK_SEQPACKET
//
// to processes of the same effective user only (SO_PEERCRED, checked on every connection),
// by SCM_RIGHTS. A peer never re-opens a descriptor through /proc, never maps memory because a
// record asked it to unless that memory's owner hands it over, and checks what it receives: a
// sealed memory file (it can neither shrink nor grow) of exactly the announced size.
//
// A process is named by ProcessId {pid, nonce}: the nonce is drawn at random when the process's
// agent starts (again in a child after fork), so a recycled pid never names an old peer, and
// every cache keyed by a ProcessId is keyed by the nonce.
//
//   request  {magic, version, kind, id}                    one message
//   reply    {magic, status, bytes} (+ one descriptor)     one message
#pragma once

#include <cstdint>
#include <string>

#include "transport/transport.hpp"
#include "util/unique_fd.hpp"

namespace moedist::transport {

// This process's identity (starts the agent the first time).
MOEDIST_API ProcessId self_process();

// What an agent serves.
enum class AgentObject : uint32_t {
    kPing = 1,     // nothing: proves the process is alive and its agent answers
    kSegment = 2,  // an arena segment, by index
    kControl = 3,  // a group's control block, by group id
};

// Offers `fd` (duplicated; the caller keeps its own) of `bytes` as object (kind, id) to peers of
// the same user. Offers of one object are counted: it is served until every offer is withdrawn
// (then the duplicate is closed).
void agent_offer(AgentObject kind, uint64_t id, int fd, uint64_t bytes);
void agent_withdraw(AgentObject kind, uint64_t id);

// Asks `owner`'s agent for object (kind, id): checks the agent runs as this user in the process
// `owner` names, receives the descriptor and checks it is a sealed memory file of exactly
// `bytes` bytes. 361001 naming what failed (the owner gone, refused, or a wrong descriptor).
Status agent_fetch(const ProcessId& owner,
                   AgentObject kind,
                   uint64_t id,
                   uint64_t bytes,
                   Clock::time_point deadline,
                   util::UniqueFd* out);

// A pidfd of `owner`'s process, proven to be that process (its agent answers after the pidfd
// was opened, so the pid cannot have been recycled in between).
Status agent_pidfd(const ProcessId& owner, Clock::time_point deadline, util::UniqueFd* out);

// Checks `fd` is a memory file sealed against shrinking and growing, of exactly `bytes` bytes;
// empty when it is, else why not.
std::string check_sealed_memory(int fd, uint64_t bytes);

// A memfd of `bytes` bytes sealed against shrinking, growing and further sealing (close-on-exec),
// or an invalid fd (errno set).
util::UniqueFd sealed_memory(const char* name, uint64_t bytes);

// A random 64-bit value (getrandom), never 0.
uint64_t random_u64();

}  // namespace moedist::transport
