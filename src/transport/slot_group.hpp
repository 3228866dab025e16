// The two rounds of every call, over one block of memory that every rank of a group can reach:
// heap memory for ranks that are threads of one process, a MAP_SHARED segment for ranks that are
// processes of one host. Only atomics cross ranks; waits yield and then sleep on a futex word of
// the block, with a deadline.
//
//   block: ControlHeader, then Slot[size] (each 64-byte aligned)
//
//   ControlHeader   id, size        which group this is
//                   broken, reason  set once (361001 for every later wait)
//                   wake, sleepers  the futex word every waiter sleeps on, and how many do;
//                                   bumped by the last arrival and the last departure of a call
//                                   and by a break
//                   arrivals, departures   totals over all calls: call n has fully arrived when
//                                   arrivals reaches (n + 1) · size (ranks call in lockstep)
//   Slot[r]         arrived    calls rank r has published   (call n published <=> arrived > n)
//                   departed   calls rank r has finished    (call n finished  <=> departed > n)
//                   flag, message [n % 2]   r's departure verdict of call n
//                   next_call  r's next call number (written by r only)
//                   process    the process holding rank r (processes; written once, at join)
//                   record[n % 2]   r's record of call n (opaque, kMaxRecordBytes)
//
// Records are double-buffered: r writes record[n % 2] of call n only after its call n - 2 has
// finished, i.e. after every reader of that call (its group, and with TP the paired group, whose
// departures a call also waits for) has departed n - 2 (and read its records). A blocking call
// writes call n after finishing n - 1; a split call's send half may run one call ahead.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "transport/transport.hpp"

namespace moedist::transport {

struct alignas(64) ControlHeader {
    std::atomic<uint64_t> magic{0};  // set (release) once the block is initialized
    uint64_t id = 0;
    int32_t size = 0;
    int32_t creator_pid = 0;
    char name[128] = {};              // the group's name (HcclGetCommName), NUL-terminated
    std::atomic<uint32_t> broken{0};  // 0 fine, 1 a reason is being written, 2 broken
    char reason[512] = {};
    alignas(64) std::atomic<uint32_t> wake{0};
    std::atomic<uint32_t> sleepers{0};
    alignas(64) std::atomic<uint64_t> arrivals{0};
    alignas(64) std::atomic<uint64_t> departures{0};
};

struct alignas(64) Slot {
    std::atomic<uint64_t> arrived{0};
    std::atomic<uint64_t> departed{0};
    std::atomic<int32_t> flag[2] = {0, 0};
    ProcessId process;       // written by rank r before the group forms; read-only after
    uint64_t next_call = 0;  // owner-only
    char message[2][256] = {};
    alignas(64) std::byte record[2][Transport::kMaxRecordBytes];
};

// Bytes of the control block of a group of `size` ranks.
std::size_t control_bytes(int size);

// The rounds over a control block (not owned). `shared`: the block is in a MAP_SHARED segment
// (cross-process futexes). `alive(rank)` (optional): false once rank's process is gone; a
// sleeping waiter asks it about the ranks it waits for every few milliseconds.
class SlotProtocol {
public:
    static constexpr uint64_t kMagic = 0x6D6F65646973740AULL;  // "moedist\n": initialized
    // Bytes before Slot[0].
    static std::size_t header_bytes();

    SlotProtocol(void* block, int size, std::string name, bool shared);

    // Placement-constructs the header and the slots (the creator, once).
    static void initialize(
        void* block, int size, uint64_t id, int32_t creator_pid, const std::string& name);

    int size() const { return size_; }
    const std::string& name() const { return name_; }
    ControlHeader& header() const { return *header_; }
    Slot& slot(int rank) const { return slots_[rank]; }
    void set_liveness(std::function<bool(int rank)> alive) { alive_ = std::move(alive); }

    uint64_t begin_call(int rank);
    void publish(int rank, uint64_t call, std::span<const std::byte> record);
    Status wait_published(uint64_t call, Clock::time_point deadline, int64_t* arrival_us = nullptr);
    const std::byte* record(int rank, uint64_t call) const;
    void finish(int rank, uint64_t call, int32_t flag, std::string_view message);
    Status wait_finished(uint64_t call, Clock::time_point deadline, Flag* flag);
    void mark_broken(const std::string& reason);
    Status broken_status() const;
    // Empty while rank's process lives (or liveness is not tracked); else the reason, and the
    // group is marked broken with it. With `grace`, a living process is watched up to 200 ms.
    std::string gone(int rank, bool grace);

private:
    enum class WaitResult { kReady, kBroken, kTimeout, kDead };
    // Waits until pending(r) is false for every rank r (ready), the group breaks (when
    // stop_on_broken), the deadline passes, or a pending rank's process is gone (*dead = r).
    template <class Pending>
    WaitResult wait_for(Pending pending,
                        Clock::time_point deadline,
                        bool stop_on_broken,
                        int* dead);
    int first_missing(const char* round, uint64_t call) const;
    std::string missing_reason(const char* round, uint64_t call) const;
    std::string dead_reason(int rank, uint64_t call) const;
    void ring();

    ControlHeader* header_;
    Slot* slots_;
    int size_;
    std::string name_;
    bool shared_;
    bool spin_first_;
    std::function<bool(int)> alive_;
};

}  // namespace moedist::transport
