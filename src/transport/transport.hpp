// The transport seam: what every backend (threads, processes on one host, MPI across hosts)
// implements and all that src/core sees of it. It moves bytes between ranks and knows nothing of
// tokens, experts or tensors. Nothing that crosses ranks is a pointer: records are opaque bytes,
// memory is named by RegionRef, groups by GroupRef.
//
// A call is two rounds on one endpoint:
//
//   begin_call → publish(record) → wait_published   every rank's record readable (round 1)
//              → the core reads peers' records and, through map(), peers' exposed regions
//   finish(flag) → wait_finished                    every rank that published has finished:
//                                                   nobody reads this rank's memory any more
//                                                   (docs/contract.md §3 completion, round 2)
//
// A wait that times out or sees a dead peer marks the group broken for good (docs/contract.md §7)
// and names the rank; every later wait fails at once with that reason.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "moedist/export.hpp"
#include "moedist/status.hpp"

namespace moedist::transport {

using Clock = std::chrono::steady_clock;

// Deadline of a wait starting now: this thread's call timeout ahead (a TimeoutScope's, else
// MOEDIST_TIMEOUT_MS).
MOEDIST_API Clock::time_point call_deadline();
// The timeout call_deadline() uses on this thread, in milliseconds, and how messages name it:
// "MOEDIST_TIMEOUT_MS = 30000 ms" or "the group's timeout of 5000 ms".
MOEDIST_API int64_t call_timeout_ms();
MOEDIST_API std::string timeout_text();

// Sets this thread's call timeout for the scope's life (a group's own timeout: MoeConfig's
// timeout_ms); <= 0 keeps the current one.
class MOEDIST_API TimeoutScope {
public:
    explicit TimeoutScope(int64_t timeout_ms);
    ~TimeoutScope();
    TimeoutScope(const TimeoutScope&) = delete;
    TimeoutScope& operator=(const TimeoutScope&) = delete;

private:
    int64_t previous_;
};

// A check that long waits on this thread run every few milliseconds (the Python module's: a
// pending Ctrl-C); when it returns true the wait stops, the group is marked broken with
// `reason`, and the call fails with 361001. Empty: none. Thread-local; the caller restores it.
struct InterruptCheck {
    bool (*pending)(void* context) = nullptr;
    void* context = nullptr;
    const char* reason = "";
};
MOEDIST_API InterruptCheck set_interrupt_check(InterruptCheck check);
// True (and *reason) when this thread's check says to stop.
MOEDIST_API bool interrupted(const char** reason);

// A process of this host as its peers name it (agent.hpp): its pid and a random nonce drawn when
// its agent started, so a recycled pid is a new process. All zero on the threads backend.
struct ProcessId {
    int32_t pid = 0;
    uint32_t reserved = 0;
    uint64_t nonce = 0;
    bool operator==(const ProcessId&) const = default;
};

// Bytes a rank exposed for its peers, as they name them. Threads: `offset` is the address in the
// one address space (owner all zero). Processes: bytes [offset, offset + bytes) of segment
// `segment` of the owner's shared-memory arena (shm_arena.hpp), which a peer obtains from the
// owner's agent, checks and maps; never an address.
struct RegionRef {
    ProcessId owner;
    uint32_t segment = 0;
    uint32_t reserved = 0;
    uint64_t segment_bytes = 0;
    uint64_t offset = 0;
    uint64_t bytes = 0;
    bool empty() const { return bytes == 0; }
};

// A group as another group's member names it (the TP pairing of two EP groups).
struct GroupRef {
    uint64_t id = 0;  // random; unique among the host's groups
    ProcessId owner;  // processes: a member whose agent serves the control block
    uint64_t control_bytes = 0;
    bool operator==(const GroupRef& o) const { return id == o.id; }
};

// The first non-zero departure flag of a call: the rank and its one-line message.
struct Flag {
    int32_t code = 0;
    int rank = -1;
    std::string message;
};

// One rank's endpoint of a group. One thread at a time per endpoint: a call (or one half of a
// split call) claims it with try_enter() and gives it back with leave(); a second thread's call
// fails at once.
//
// Calls in flight: a split call's send half begins call n and publishes it; its receive half
// (later, in call order) waits for the peers and finishes it. At most two calls are between
// their halves (records and flags are double-buffered by n % 2), and each keeps its own bank of
// scratch slots (bank n % 2), so that a call's exposed memory is not reused by the next one.
class MOEDIST_API Transport {
public:
    static constexpr std::size_t kMaxRecordBytes = 1536;
    // Scratch slots of one call (their use is the caller's: core/scratch.hpp), and of both banks.
    static constexpr int kScratchSlotsPerCall = 9;
    static constexpr int kScratchSlots = 2 * kScratchSlotsPerCall;
    static constexpr uint64_t kMaxCallsInFlight = 2;

    virtual ~Transport() = default;

    bool try_enter() { return !busy_.exchange(true, std::memory_order_acquire); }
    void leave() { busy_.store(false, std::memory_order_release); }

    // Calls in flight, kept by the core while it holds the endpoint: send halves issued and
    // receive halves done (a blocking call counts as one of each). A call's sequence number is
    // sends_issued() when its send half starts.
    uint64_t sends_issued() const { return sends_issued_; }
    uint64_t receives_done() const { return receives_done_; }
    void count_send() { ++sends_issued_; }
    void count_receive() { ++receives_done_; }
    // Whether the send half can publish ahead of the receive half (two calls in flight). When
    // not (the mpi engine's rounds are collective operations), a split call does all of its
    // work in the receive half.
    virtual bool pipelines_calls() const { return true; }

    // Scratch slot `slot` of the bank of the call this endpoint's holder runs now.
    void* scratch(int slot, std::size_t bytes) {
        return scratch_slot(slot + scratch_bank_ * kScratchSlotsPerCall, bytes);
    }
    // Selects the bank of call `sequence` (an endpoint that wraps or stages through another
    // forwards it).
    virtual void set_scratch_bank(uint64_t sequence) {
        scratch_bank_ = static_cast<int>(sequence % 2);
    }

    virtual int rank() const = 0;
    virtual int size() const = 0;
    virtual const std::string& name() const = 0;
    virtual GroupRef ref() const = 0;

    // The endpoint of rank `rank` in the group `ref` names, for reading records and memory of a
    // paired group (its members' calls are never made through it). Fails with 361001.
    virtual Status open_peer(const GroupRef& ref, int rank, std::shared_ptr<Transport>* out) = 0;

    // Round 1.
    virtual uint64_t begin_call() = 0;
    virtual void publish(uint64_t call, std::span<const std::byte> record) = 0;
    // `arrival_us` (optional, size() entries): microseconds from the start of this wait until
    // each rank's record was seen (0 for a rank already there).
    virtual Status wait_published(uint64_t call,
                                  Clock::time_point deadline,
                                  int64_t* arrival_us = nullptr) = 0;
    // Rank's record of `call`; valid after wait_published(call) until this endpoint finishes.
    // On an endpoint from open_peer(), wait_published() and wait_finished() wait for the paired
    // group's ranks without taking part.
    virtual const std::byte* record(int rank, uint64_t call) const = 0;

    // Round 2: this rank has finished `call` (flag 0 = fine, else a code and one-line message).
    virtual void finish(uint64_t call, int32_t flag, std::string_view message) = 0;
    // Waits until every rank that published `call` has finished; the lowest flagged rank goes
    // to *flag. Error when the group is (or becomes) broken.
    virtual Status wait_finished(uint64_t call, Clock::time_point deadline, Flag* flag) = 0;

    // Empty while rank's process lives; else why not (the group is then marked broken with it).
    // With `grace`, a living process is watched a moment longer (one being killed loses its
    // memory a moment before it counts as exited); without, the answer is now's.
    virtual std::string gone(int rank, bool grace) = 0;

    // A call this rank abandoned after publishing and finishing (core's abort: its waits never
    // run): progresses what it posted until the peers can receive it without this rank's help,
    // or the deadline. Engines whose sends need the sender's progress override it.
    virtual void settle_sends(Clock::time_point /*deadline*/) {}

    virtual void mark_broken(const std::string& reason) = 0;
    virtual Status broken_status() const = 0;

    // Memory. expose(): this rank's bytes [data, data + bytes) for peers during the current call
    // (staged into scratch slot `stage` when peers cannot map them). map(): a region another rank
    // of this group exposed, in this process; null when it cannot be mapped here.
    virtual Status expose(const void* data, std::size_t bytes, int stage, RegionRef* out) = 0;
    virtual const std::byte* map(int rank, const RegionRef& region) = 0;
    // Whether expose() would give peers [data, data + bytes) where they are (no staged copy).
    virtual bool exposes_in_place(const void* /*data*/, std::size_t /*bytes*/) { return true; }
    // Exposable memory of this rank, at least `bytes`, kept (and grown) across calls; `slot` in
    // [0, kScratchSlots) (scratch() picks the bank).
    virtual void* scratch_slot(int slot, std::size_t bytes) = 0;

    // Nodes. map() reaches the memory of ranks on this rank's node only; bytes for ranks of
    // other nodes cross through exchange(). Backends on one host have one node.
    virtual int node_count() const { return 1; }
    virtual int node_of(int /*rank*/) const { return 0; }
    // The ranks of node `node`, ascending.
    virtual std::span<const int> node_ranks(int node) const;
    // This rank's node as a group of its own (rank = index in node_ranks), for node-local rounds;
    // null with one node.
    virtual Transport* node_group() { return nullptr; }
    // An all-to-all of bytes between ranks of different nodes: send[r] goes to rank r, recv[r]
    // (sized by the caller) comes from r; both sides agree on every size. Between ranks of one
    // node every size must be 0.
    virtual Status exchange(std::span<const std::span<const std::byte>> send,
                            std::span<const std::span<std::byte>> recv,
                            Clock::time_point deadline);

private:
    std::atomic<bool> busy_{false};
    uint64_t sends_issued_ = 0;
    uint64_t receives_done_ = 0;
    int scratch_bank_ = 0;
};

}  // namespace moedist::transport
