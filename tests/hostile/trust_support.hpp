// The trust suite's tools: a small job whose every received row is checked against the job it
// belongs to (so ranks of two jobs that meet are caught), forked ranks and launchers, an outcome
// board shared across fork, and intruders — processes under another user, or of this user that
// do not follow the protocol.
#pragma once

#include <gtest/gtest.h>

// Tests that fork after this process has started threads skip under ThreadSanitizer, which
// cannot follow such a fork ("starting new threads after multi-threaded fork is not
// supported"); the release and ASan runs of the suite cover them.
#if defined(__SANITIZE_THREAD__)
#define MOEDIST_SKIP_FORK_AFTER_THREADS()                                                     \
    GTEST_SKIP() << "forks after starting threads, which ThreadSanitizer cannot follow (the " \
                    "release and ASan runs cover this test)"
#else
#define MOEDIST_SKIP_FORK_AFTER_THREADS() (void)0
#endif

namespace trust {
// How many trials a repeated trust test runs: `full` in release builds, `sanitized` under ASan or
// TSan, where each job runs several times slower.
constexpr int trials(int full, int sanitized) {
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
    (void)full;
    return sanitized;
#else
    (void)sanitized;
    return full;
#endif
}
}  // namespace trust

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>

#include "moedist/moedist.hpp"

namespace trust {

// W ranks, E = W experts (L = 1), K = 1, bf16, H columns, BS tokens. x of (job, rank) is a
// function of both; token t of rank r goes to expert (t + r + 1) % W; weights 1.0, and the
// experts return their rows unchanged, so combine gives x back.
struct JobSpec {
    int world = 2;
    int64_t tokens = 3;
    int64_t hidden = 32;
    uint64_t job = 1;
    // Where this rank puts x / its expert outputs: in a fresh arena segment of at least this
    // many bytes (0: wherever the arena puts them).
    std::size_t x_segment_bytes = 0;
    std::size_t expert_out_segment_bytes = 0;
    // This rank's expandX one row short of T·A: its first phase fails (561002).
    bool short_expand_x = false;
    // MoeConfig::timeout_ms (0: MOEDIST_TIMEOUT_MS).
    int64_t timeout_ms = 0;
    // Combine gets expandIdx as a contiguous (BS, K) tensor (as Ascend's A2 tests pass it).
    bool expand_idx_2d = false;
};

// bf16 bits of x[t][h] on `rank` of `job` (finite, distinct per job, rank, token and column).
uint16_t x_bits(uint64_t job, int rank, int64_t t, int64_t h);

// One rank's job on `ep`: `calls` dispatch + combine pairs; every row received must be the x row
// of the job's source rank, combine's x this rank's x. The first failure (moedist's, or a
// "rows of another job" mismatch, 900001).
moedist::Status run_rank(const JobSpec& spec, const moedist::Communicator& ep, int calls = 1);

// A board of `slots` outcomes {code, message} in memory shared with forked children (made before
// they fork), released at scope end.
class Board {
public:
    explicit Board(int slots);
    ~Board();
    Board(const Board&) = delete;
    Board& operator=(const Board&) = delete;
    void put(int slot, const moedist::Status& s) const;
    int32_t code(int slot) const;  // -1: never reported
    std::string message(int slot) const;

private:
    struct Slot;
    Slot* slots_ = nullptr;
    int count_ = 0;
};

// Forks a child running `body`; the child exits with its return value (never returns).
pid_t fork_child(const std::function<int()>& body);
// Waits at most `seconds` for `pid`: its exit code, 128 + the signal that killed it, or -1 when
// it had to be killed at the deadline.
int wait_child(pid_t pid, double seconds);

// True when this process may become another user (root): intruders under uid 65534 need it.
bool can_change_user();
// In a forked child: drops to uid/gid 65534 (nobody); false when it could not.
bool become_nobody();

// The rendezvous key the ranks of `table_path` forked by this process compute (found by a
// forked child, as those ranks would).
std::string child_rendezvous_key(const std::string& table_path);

// A SOCK_SEQPACKET connection to the abstract name "\0<name>" (-1 when none).
int connect_abstract(const std::string& name);

// Lines of /proc/self/maps naming a moedist arena segment (this process's and its peers').
int mapped_arena_segments();
// /proc/meminfo's Shmem in KiB (shared memory of the whole host, memfds included).
int64_t host_shmem_kib();
// /proc/self/status's RssShmem in KiB.
int64_t self_rss_shmem_kib();

}  // namespace trust
