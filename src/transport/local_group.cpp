#include "transport/local_group.hpp"

#include <algorithm>
#include <cstring>
#include <thread>

#include "util/env.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#define MOEDIST_PAUSE() _mm_pause()
#else
#define MOEDIST_PAUSE() ((void)0)
#endif

namespace moedist::transport {

Clock::time_point call_deadline() {
    return Clock::now() + std::chrono::milliseconds(util::timeout_ms());
}

LocalGroup::LocalGroup(int size, std::string name)
    : size_(size),
      name_(std::move(name)),
      slots_(std::make_unique<Slot[]>(static_cast<std::size_t>(size))),
      spin_first_(static_cast<unsigned>(size) <=
                  std::max(1u, std::thread::hardware_concurrency())) {}

uint64_t LocalGroup::begin_call(int rank) {
    return slots_[static_cast<std::size_t>(rank)].next_call++;
}

void LocalGroup::arrive(int rank, uint64_t call, const void* record, std::size_t bytes) {
    Slot& slot = slots_[static_cast<std::size_t>(rank)];
    std::memcpy(slot.record[call % 2], record, bytes < kMaxRecordBytes ? bytes : kMaxRecordBytes);
    slot.arrived.store(call + 1, std::memory_order_seq_cst);
    notify();
}

const void* LocalGroup::record(int rank, uint64_t call) const {
    return slots_[static_cast<std::size_t>(rank)].record[call % 2];
}

void LocalGroup::depart(int rank, uint64_t call, int32_t flag, const std::string& message) {
    Slot& slot = slots_[static_cast<std::size_t>(rank)];
    char* text = slot.message[call % 2];
    const std::size_t n =
        message.size() < sizeof(slot.message[0]) - 1 ? message.size() : sizeof(slot.message[0]) - 1;
    std::memcpy(text, message.data(), n);
    text[n] = '\0';
    slot.flag[call % 2].store(flag, std::memory_order_relaxed);
    slot.departed.store(call + 1, std::memory_order_seq_cst);
    notify();
}

void LocalGroup::notify() {
    // Pairs with the waiter's increment of blocked_waiters_ before its last check (both seq_cst):
    // either the waiter sees our store, or we see the waiter and wake it under the mutex.
    if (blocked_waiters_.load(std::memory_order_seq_cst) > 0) {
        { std::lock_guard<std::mutex> lock(mutex_); }
        cv_.notify_all();
    }
}

void LocalGroup::mark_broken(const std::string& reason) {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!broken_.load(std::memory_order_relaxed)) {
            broken_reason_ = reason;
            broken_.store(true, std::memory_order_seq_cst);
        }
    }
    cv_.notify_all();
}

Status LocalGroup::broken_status() const {
    if (!broken_.load(std::memory_order_acquire)) return Status::Ok();
    std::lock_guard<std::mutex> lock(mutex_);
    return {Code::kRuntime,
            "communicator '" + name_ + "' must not be broken, got broken by: " + broken_reason_};
}

template <class Ready>
LocalGroup::WaitResult LocalGroup::wait_for(Ready ready,
                                            Clock::time_point deadline,
                                            bool stop_on_broken) {
    // With no more ranks than cores a peer is running and about to arrive: spin a little. With
    // more ranks than cores the peer needs this core: yield at once (a pause loop here costs a
    // scheduler quantum). Then block.
    auto stop = [&] { return stop_on_broken && broken_.load(std::memory_order_seq_cst); };
    if (spin_first_) {
        for (int i = 0; i < 2048; ++i) {
            if (ready()) return WaitResult::kReady;
            if (stop()) return WaitResult::kBroken;
            MOEDIST_PAUSE();
        }
    }
    for (int i = 0; i < 256; ++i) {
        if (ready()) return WaitResult::kReady;
        if (stop()) return WaitResult::kBroken;
        std::this_thread::yield();
    }
    std::unique_lock<std::mutex> lock(mutex_);
    blocked_waiters_.fetch_add(1, std::memory_order_seq_cst);
    WaitResult result = WaitResult::kTimeout;
    for (;;) {
        if (ready()) {
            result = WaitResult::kReady;
            break;
        }
        if (stop()) {
            result = WaitResult::kBroken;
            break;
        }
        if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
            result = ready() ? WaitResult::kReady
                             : (stop() ? WaitResult::kBroken : WaitResult::kTimeout);
            break;
        }
    }
    blocked_waiters_.fetch_sub(1, std::memory_order_seq_cst);
    return result;
}

std::string LocalGroup::missing_reason(const char* round, uint64_t call) const {
    int missing = -1;
    for (int r = 0; r < size_; ++r) {
        const Slot& slot = slots_[static_cast<std::size_t>(r)];
        const auto& counter = std::strcmp(round, "arrive") == 0 ? slot.arrived : slot.departed;
        if (counter.load(std::memory_order_seq_cst) <= call) {
            missing = r;
            break;
        }
    }
    return "rank " + std::to_string(missing) + " of communicator '" + name_ + "' must " + round +
           " within MOEDIST_TIMEOUT_MS = " + std::to_string(util::timeout_ms()) + " ms, got no " +
           round + " (call " + std::to_string(call) + ")";
}

Status LocalGroup::wait_arrivals(uint64_t call, Clock::time_point deadline) {
    auto ready = [this, call] {
        for (int r = 0; r < size_; ++r) {
            if (slots_[static_cast<std::size_t>(r)].arrived.load(std::memory_order_seq_cst) <=
                call) {
                return false;
            }
        }
        return true;
    };
    switch (wait_for(ready, deadline, /*stop_on_broken=*/true)) {
        case WaitResult::kReady:
            // Our arrival store came before this load (both seq_cst), and a rank that times out
            // stores `broken` before it looks at arrivals: either it waits for our departure,
            // or we see `broken` here and read none of its tensors.
            if (broken_.load(std::memory_order_seq_cst)) return broken_status();
            return Status::Ok();
        case WaitResult::kBroken:
            return broken_status();
        case WaitResult::kTimeout:
            break;
    }
    const std::string reason = missing_reason("arrive", call);
    mark_broken(reason);
    return {Code::kRuntime, reason};
}

Status LocalGroup::wait_departures(uint64_t call,
                                   Clock::time_point deadline,
                                   int32_t* flag,
                                   int* flag_rank,
                                   std::string* flag_message) {
    // SPEC §3 completion: every rank that arrived at `call` may be reading our tensors until it
    // departs, broken group or not. A rank that has not arrived once `broken` is set will see it
    // after arriving and read nothing, so it is not waited for.
    auto ready = [this, call] {
        const bool broken = broken_.load(std::memory_order_seq_cst);
        for (int r = 0; r < size_; ++r) {
            const Slot& slot = slots_[static_cast<std::size_t>(r)];
            if (slot.departed.load(std::memory_order_seq_cst) > call) continue;
            if (broken && slot.arrived.load(std::memory_order_seq_cst) <= call) continue;
            return false;
        }
        return true;
    };
    if (wait_for(ready, deadline, /*stop_on_broken=*/false) == WaitResult::kTimeout) {
        // A rank neither departs nor fails: break the group and give readers one more period.
        const std::string reason = missing_reason("depart", call);
        mark_broken(reason);
        if (wait_for(ready, call_deadline(), false) == WaitResult::kTimeout)
            return {Code::kRuntime, reason};
    }
    if (broken_.load(std::memory_order_seq_cst)) return broken_status();
    *flag = 0;
    *flag_rank = -1;
    for (int r = 0; r < size_; ++r) {
        const int32_t f =
            slots_[static_cast<std::size_t>(r)].flag[call % 2].load(std::memory_order_relaxed);
        if (f != 0) {
            *flag = f;
            *flag_rank = r;
            *flag_message = slots_[static_cast<std::size_t>(r)].message[call % 2];
            break;
        }
    }
    return Status::Ok();
}

}  // namespace moedist::transport
