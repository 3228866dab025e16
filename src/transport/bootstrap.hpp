// The messages of a group's bootstrap, as they cross processes, and the checks every receiver
// applies before it uses one (pure functions: the fuzzers call them on any bytes).
//
//   Hello    what each member of a process group says in the two all-gathers of its join
//            (process_group.cpp): who it is, and rank 0 also the group's id and control block
//   Claim    what a rank says to the hub of a rank table's rendezvous (socket_rendezvous.cpp)
//   Verdict  what the hub answers: go on, or why the rendezvous failed
//
// Nothing in them is ever a pointer or a descriptor number; text is read to its bound and shown
// through util::peer_text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "transport/transport.hpp"

namespace moedist::transport {

struct Hello {
    static constexpr uint64_t kMagic = 0x6F6C6C6548646D00ULL;  // "\0mdHello"
    static constexpr uint32_t kVersion = 1;
    uint64_t magic = kMagic;
    uint32_t version = kVersion;
    int32_t size = 0;
    int32_t rank = -1;
    int32_t ok = 1;
    ProcessId process;
    uint64_t name_hash = 0;
    uint64_t group_id = 0;       // rank 0: the group's id
    uint64_t control_bytes = 0;  // rank 0: its control block's size
    char message[160] = {};      // why not ok
};

// Empty when `all` (what an all-gather returned) holds `size` hellos, the one at index r from
// rank r, of this protocol, for a group of `size` named as `name_hash` says, rank 0 with a
// group id and a control block of control_bytes(size) bytes, every process named (pid, nonce)
// and no process twice; else the first thing wrong, in words. With every hello well formed,
// *failed (when not null) gets the first member that said it failed (-1: none).
std::string check_hellos(std::span<const std::byte> all,
                         int size,
                         uint64_t name_hash,
                         bool first_round,
                         int* failed);

struct Claim {
    static constexpr uint64_t kMagic = 0x6D69616C43646D00ULL;  // "\0mdClaim"
    static constexpr uint32_t kVersion = 1;
    uint64_t magic = kMagic;
    uint32_t version = kVersion;
    int32_t rank = -1;
    int32_t size = 0;
    int32_t pid = 0;
    uint64_t table_fingerprint = 0;  // what the claimant read in the table (its ranks, servers)
};

// Empty when `bytes` is a claim of this protocol for a rank in [0, size) other than `hub_rank`;
// else why it is not.
std::string check_claim(std::span<const std::byte> bytes, int size, int hub_rank, Claim* out);

struct Verdict {
    static constexpr uint64_t kMagic = 0x7463647265566D00ULL;  // "\0mVerdct"
    uint64_t magic = kMagic;
    int32_t code = 0;  // 0: go on; else the Code every member fails with
    int32_t hub_rank = -1;
    char message[384] = {};
};

// The status a verdict carries (Ok when code is 0); a malformed verdict is a 361001 saying so.
// The hub's text is bounded and shown as the hub's.
Status read_verdict(std::span<const std::byte> bytes, const std::string& rendezvous);

// An unknown code from another process becomes 361001.
Code code_from_peer(int32_t raw);

}  // namespace moedist::transport
