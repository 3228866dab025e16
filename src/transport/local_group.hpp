// The threads transport: a group of ranks that are threads of one process.
//
// It moves no tokens and knows none: each call of a collective operation is two rounds on
// per-rank slots, and data moves by the executors reading peers' memory through the pointers
// the records carry.
//
//   slot[r] (one cache-line-aligned block per rank, written only by rank r):
//     arrived   calls whose record rank r has published      (call n published <=> arrived > n)
//     departed  calls rank r has finished                     (call n done      <=> departed > n)
//     flag[2]   rank r's departure flag of call n, at n % 2
//     record[2] rank r's record of call n, at n % 2 (kMaxRecordBytes opaque bytes)
//
// Records are double-buffered: rank r writes record[(n+2) % 2] only after every reader of call n
// has arrived at call n+1, which each does only after finishing call n.
//
// Waits spin briefly, then yield, then block on a condition variable, with a deadline; a wait
// that times out marks the group broken (naming the missing rank) and wakes every waiter.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "moedist/status.hpp"

namespace moedist::transport {

using Clock = std::chrono::steady_clock;

class LocalGroup : public std::enable_shared_from_this<LocalGroup> {
public:
    static constexpr std::size_t kMaxRecordBytes = 1024;

    LocalGroup(int size, std::string name);
    LocalGroup(const LocalGroup&) = delete;
    LocalGroup& operator=(const LocalGroup&) = delete;

    int size() const { return size_; }
    const std::string& name() const { return name_; }

    // The number of rank's next call (0-based); only rank's own thread may call this.
    uint64_t begin_call(int rank);

    // Round 1: publish rank's record of `call`.
    void arrive(int rank, uint64_t call, const void* record, std::size_t bytes);
    // Waits until every rank has arrived at `call` (or later). OK only when the group is not broken
    // afterwards; on timeout marks it broken, naming the first rank missing. Whatever it returns,
    // a rank that arrived must call depart() and wait_departures() before it returns to its caller.
    Status wait_arrivals(uint64_t call, Clock::time_point deadline);
    // Rank's record of `call`; valid after wait_arrivals(call) until this caller departs.
    const void* record(int rank, uint64_t call) const;

    // Round 2: rank has finished `call`; `flag` (0 = fine) and, with a flag, a one-line message
    // travel with the departure.
    void depart(int rank, uint64_t call, int32_t flag, const std::string& message = {});
    // Waits until every rank that arrived at `call` has departed (every rank, when not broken);
    // reports the lowest rank with a non-zero flag. Error when the group is broken.
    Status wait_departures(uint64_t call,
                           Clock::time_point deadline,
                           int32_t* flag,
                           int* flag_rank,
                           std::string* flag_message);

    // After a timeout or peer failure: every later wait returns 361001 with `reason`.
    void mark_broken(const std::string& reason);
    Status broken_status() const;

private:
    struct alignas(64) Slot {
        std::atomic<uint64_t> arrived{0};
        std::atomic<uint64_t> departed{0};
        std::atomic<int32_t> flag[2] = {0, 0};
        char message[2][256] = {};  // with a flag: the departing rank's error
        uint64_t next_call = 0;     // owner-only
        alignas(64) std::byte record[2][kMaxRecordBytes];
    };

    enum class WaitResult { kReady, kBroken, kTimeout };
    template <class Ready>
    WaitResult wait_for(Ready ready, Clock::time_point deadline, bool stop_on_broken);
    std::string missing_reason(const char* round, uint64_t call) const;
    void notify();

    const int size_;
    const std::string name_;
    std::unique_ptr<Slot[]> slots_;
    const bool spin_first_;  // no more ranks than cores: waits spin before they yield

    std::atomic<bool> broken_{false};
    std::atomic<int> blocked_waiters_{0};
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::string broken_reason_;  // guarded by mutex_
};

// Deadline of a call starting now: MOEDIST_TIMEOUT_MS ahead.
Clock::time_point call_deadline();

}  // namespace moedist::transport
