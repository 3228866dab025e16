#include "transport/slot_group.hpp"

#include <algorithm>
#include <cstring>
#include <new>
#include <thread>

#include "transport/futex.hpp"
#include "util/env.hpp"
#include "util/log.hpp"
#include "util/peer_text.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#define MOEDIST_PAUSE() _mm_pause()
#else
#define MOEDIST_PAUSE() ((void)0)
#endif

namespace moedist::transport {
namespace {

constexpr auto kLivenessPeriod = std::chrono::milliseconds(10);

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

}  // namespace

namespace {
thread_local InterruptCheck interrupt_check;
thread_local int64_t call_timeout = 0;  // 0: MOEDIST_TIMEOUT_MS
}  // namespace

int64_t call_timeout_ms() { return call_timeout > 0 ? call_timeout : util::timeout_ms(); }

std::string timeout_text() {
    return call_timeout > 0 ? "the group's timeout of " + std::to_string(call_timeout) + " ms"
                            : "MOEDIST_TIMEOUT_MS = " + std::to_string(util::timeout_ms()) + " ms";
}

Clock::time_point call_deadline() {
    return Clock::now() + std::chrono::milliseconds(call_timeout_ms());
}

TimeoutScope::TimeoutScope(int64_t timeout_ms) : previous_(call_timeout) {
    if (timeout_ms > 0) call_timeout = timeout_ms;
}

TimeoutScope::~TimeoutScope() { call_timeout = previous_; }

InterruptCheck set_interrupt_check(InterruptCheck check) {
    const InterruptCheck previous = interrupt_check;
    interrupt_check = check;
    return previous;
}

bool interrupted(const char** reason) {
    if (interrupt_check.pending == nullptr || !interrupt_check.pending(interrupt_check.context))
        return false;
    *reason = interrupt_check.reason;
    return true;
}

std::size_t SlotProtocol::header_bytes() { return round_up(sizeof(ControlHeader), 64); }

std::size_t control_bytes(int size) {
    return round_up(sizeof(ControlHeader), 64) + static_cast<std::size_t>(size) * sizeof(Slot);
}

void SlotProtocol::initialize(
    void* block, int size, uint64_t id, int32_t creator_pid, const std::string& name) {
    auto* header = new (block) ControlHeader();
    header->id = id;
    header->size = size;
    header->creator_pid = creator_pid;
    std::memcpy(header->name, name.data(), std::min(name.size(), sizeof(header->name) - 1));
    auto* slots = reinterpret_cast<Slot*>(static_cast<std::byte*>(block) +
                                          round_up(sizeof(ControlHeader), 64));
    for (int r = 0; r < size; ++r) new (&slots[r]) Slot();
    header->magic.store(kMagic, std::memory_order_release);
}

SlotProtocol::SlotProtocol(void* block, int size, std::string name, bool shared)
    : header_(static_cast<ControlHeader*>(block)),
      slots_(reinterpret_cast<Slot*>(static_cast<std::byte*>(block) +
                                     round_up(sizeof(ControlHeader), 64))),
      size_(size),
      name_(std::move(name)),
      shared_(shared),
      spin_first_(static_cast<unsigned>(size) <=
                  std::max(1u, std::thread::hardware_concurrency())) {}

uint64_t SlotProtocol::begin_call(int rank) { return slots_[rank].next_call++; }

void SlotProtocol::ring() {
    // Pairs with the waiter's sleepers increment before its last look at `wake` (both seq_cst):
    // either the waiter sees the new value and does not sleep, or we see it and wake it.
    header_->wake.fetch_add(1, std::memory_order_seq_cst);
    if (header_->sleepers.load(std::memory_order_seq_cst) > 0)
        futex_wake_all(&header_->wake, shared_);
}

void SlotProtocol::publish(int rank, uint64_t call, std::span<const std::byte> record) {
    Slot& slot = slots_[rank];
    std::memcpy(slot.record[call % 2],
                record.data(),
                std::min<std::size_t>(record.size(), Transport::kMaxRecordBytes));
    slot.arrived.store(call + 1, std::memory_order_seq_cst);
    const uint64_t total = header_->arrivals.fetch_add(1, std::memory_order_seq_cst) + 1;
    // The last arrival of a call in lockstep rings; with calls in flight (a split call's send
    // half runs ahead) the totals no longer say which arrival is the last, so ring whenever
    // someone sleeps (a sleeper counts itself before its last look at the slots: seq_cst).
    if (total == (call + 1) * static_cast<uint64_t>(size_) ||
        header_->sleepers.load(std::memory_order_seq_cst) > 0)
        ring();
}

const std::byte* SlotProtocol::record(int rank, uint64_t call) const {
    return slots_[rank].record[call % 2];
}

void SlotProtocol::finish(int rank, uint64_t call, int32_t flag, std::string_view message) {
    Slot& slot = slots_[rank];
    char* text = slot.message[call % 2];
    const std::size_t n = std::min(message.size(), sizeof(slot.message[0]) - 1);
    if (n > 0) std::memcpy(text, message.data(), n);  // an empty view may have no data
    text[n] = '\0';
    slot.flag[call % 2].store(flag, std::memory_order_relaxed);
    slot.departed.store(call + 1, std::memory_order_seq_cst);
    const uint64_t total = header_->departures.fetch_add(1, std::memory_order_seq_cst) + 1;
    if (total == (call + 1) * static_cast<uint64_t>(size_) ||
        header_->sleepers.load(std::memory_order_seq_cst) > 0)
        ring();  // the last departure, or someone sleeps (as in publish)
}

void SlotProtocol::mark_broken(const std::string& reason) {
    uint32_t fine = 0;
    if (header_->broken.compare_exchange_strong(fine, 1, std::memory_order_seq_cst)) {
        const std::size_t n = std::min(reason.size(), sizeof(header_->reason) - 1);
        std::memcpy(header_->reason, reason.data(), n);
        header_->reason[n] = '\0';
        header_->broken.store(2, std::memory_order_seq_cst);
        MOEDIST_LOG(kWarn, "communicator '{}' is broken: {}", name_, reason);
    }
    ring();
}

std::string SlotProtocol::gone(int rank, bool grace) {
    if (!alive_ || rank < 0 || rank >= size_) return {};
    // Asked after the rank's memory could not be mapped: a process being killed loses its
    // descriptors a moment before it counts as exited, so give it that moment.
    bool alive = alive_(rank);
    for (int i = 0; grace && alive && i < 50; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(4));
        alive = alive_(rank);
    }
    if (alive) return {};
    const std::string reason =
        dead_reason(rank, slots_[rank].arrived.load(std::memory_order_seq_cst) - 1);
    mark_broken(reason);
    return reason;
}

Status SlotProtocol::broken_status() const {
    uint32_t state = header_->broken.load(std::memory_order_seq_cst);
    if (state == 0) return Status::Ok();
    // The breaker is writing its reason (a few stores); a block that stays at 1 was written by
    // something else than a rank, and is broken without one.
    for (int i = 0; state == 1 && i < 100000; ++i) {
        std::this_thread::yield();
        state = header_->broken.load(std::memory_order_seq_cst);
    }
    return {Code::kRuntime,
            "communicator '" + name_ +
                "' must not be broken, got broken by: " + util::peer_text(header_->reason, 400)};
}

template <class Pending>
SlotProtocol::WaitResult SlotProtocol::wait_for(Pending pending,
                                                Clock::time_point deadline,
                                                bool stop_on_broken,
                                                int* dead) {
    auto ready = [&] {
        for (int r = 0; r < size_; ++r) {
            if (pending(r)) return false;
        }
        return true;
    };
    // With no more ranks than cores a peer is running and about to arrive: spin a little. With
    // more ranks than cores the peer needs this core: yield at once (a pause loop here costs a
    // scheduler quantum). Then sleep on the wake word, checking liveness now and then.
    auto stop = [&] {
        return stop_on_broken && header_->broken.load(std::memory_order_seq_cst) != 0;
    };
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
    MOEDIST_LOG(kTrace, "communicator '{}': waiting for peers (sleeping)", name_);
    for (;;) {
        const uint32_t seen = header_->wake.load(std::memory_order_seq_cst);
        if (ready()) return WaitResult::kReady;
        if (stop()) return WaitResult::kBroken;
        const auto now = Clock::now();
        if (now >= deadline) return ready() ? WaitResult::kReady : WaitResult::kTimeout;
        if (const char* why = nullptr; interrupted(&why)) {
            // Broken for every rank; a completion wait goes on (for the ranks still reading
            // this rank's memory, who now stop soon), an arrival wait stops here.
            mark_broken(std::string("a call on this rank was interrupted: ") + why);
            if (stop_on_broken) return ready() ? WaitResult::kReady : WaitResult::kBroken;
        }
        if (alive_) {  // only the ranks still waited for: a rank that is done may exit
            for (int r = 0; r < size_; ++r) {
                if (pending(r) && !alive_(r)) {
                    *dead = r;
                    return ready() ? WaitResult::kReady : WaitResult::kDead;
                }
            }
        }
        header_->sleepers.fetch_add(1, std::memory_order_seq_cst);
        if (header_->wake.load(std::memory_order_seq_cst) == seen && !ready()) {
            auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - now);
            left = std::min<std::chrono::nanoseconds>(left, kLivenessPeriod);
            futex_wait(&header_->wake, seen, left, shared_);
        }
        header_->sleepers.fetch_sub(1, std::memory_order_seq_cst);
    }
}

int SlotProtocol::first_missing(const char* round, uint64_t call) const {
    const bool arrive = std::strcmp(round, "arrive") == 0;
    for (int r = 0; r < size_; ++r) {
        const Slot& slot = slots_[r];
        const auto& counter = arrive ? slot.arrived : slot.departed;
        if (counter.load(std::memory_order_seq_cst) <= call) return r;
    }
    return -1;
}

std::string SlotProtocol::missing_reason(const char* round, uint64_t call) const {
    return "rank " + std::to_string(first_missing(round, call)) + " of communicator '" + name_ +
           "' must " + round + " within " + timeout_text() + ", got no " + round + " (call " +
           std::to_string(call) + ")";
}

std::string SlotProtocol::dead_reason(int rank, uint64_t call) const {
    return "rank " + std::to_string(rank) + " of communicator '" + name_ +
           "' must stay alive until call " + std::to_string(call) + " completes, got process " +
           std::to_string(slots_[rank].process.pid) + " gone (it died or exited)";
}

Status SlotProtocol::wait_published(uint64_t call,
                                    Clock::time_point deadline,
                                    int64_t* arrival_us) {
    const auto start = Clock::now();
    if (arrival_us != nullptr) std::fill(arrival_us, arrival_us + size_, int64_t{-1});
    // A rank's arrival is timed when a wait first sees it (timing only: never compared).
    auto pending = [this, call, arrival_us, start](int r) {
        const bool waiting = slots_[r].arrived.load(std::memory_order_seq_cst) <= call;
        if (!waiting && arrival_us != nullptr && arrival_us[r] < 0) {
            arrival_us[r] =
                std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
        }
        return waiting;
    };
    int dead = -1;
    switch (wait_for(pending, deadline, /*stop_on_broken=*/true, &dead)) {
        case WaitResult::kReady:
            // Our arrival store came before this load (both seq_cst), and a rank that times out
            // stores `broken` before it looks at arrivals: either it waits for our departure,
            // or we see `broken` here and read none of its memory.
            if (header_->broken.load(std::memory_order_seq_cst) != 0) return broken_status();
            return Status::Ok();
        case WaitResult::kBroken:
            return broken_status();
        case WaitResult::kDead: {
            const std::string reason = dead_reason(dead, call);
            mark_broken(reason);
            return {Code::kRuntime, reason};
        }
        case WaitResult::kTimeout:
            break;
    }
    const std::string reason = missing_reason("arrive", call);
    mark_broken(reason);
    return {Code::kRuntime, reason};
}

Status SlotProtocol::wait_finished(uint64_t call, Clock::time_point deadline, Flag* flag) {
    // docs/contract.md §3 completion: every rank that published `call` may be reading our memory
    // until it finishes, broken group or not. A rank that had not published when `broken` was set
    // sees it after publishing and reads nothing, so it is not waited for. A dead rank reads
    // nothing.
    auto pending = [this, call](int r) {
        const Slot& slot = slots_[r];
        if (slot.departed.load(std::memory_order_seq_cst) > call) return false;
        if (header_->broken.load(std::memory_order_seq_cst) == 0) return true;
        if (slot.arrived.load(std::memory_order_seq_cst) <= call) return false;
        return !alive_ || alive_(r);  // a dead rank reads nothing any more
    };
    int dead = -1;
    WaitResult result = wait_for(pending, deadline, /*stop_on_broken=*/false, &dead);
    while (result == WaitResult::kDead) {  // once broken, dead ranks are no longer waited for
        mark_broken(dead_reason(dead, call));
        result = wait_for(pending, deadline, false, &dead);
    }
    if (result == WaitResult::kTimeout) {
        // A rank neither departs nor fails: break the group and give readers one more period.
        const std::string reason = missing_reason("depart", call);
        mark_broken(reason);
        if (wait_for(pending, call_deadline(), false, &dead) != WaitResult::kReady)
            return {Code::kRuntime, reason};
    }
    if (header_->broken.load(std::memory_order_seq_cst) != 0) return broken_status();
    *flag = Flag{};
    for (int r = 0; r < size_; ++r) {
        const int32_t f = slots_[r].flag[call % 2].load(std::memory_order_relaxed);
        if (f != 0) {
            *flag = Flag{f, r, util::peer_text(slots_[r].message[call % 2])};
            break;
        }
    }
    return Status::Ok();
}

}  // namespace moedist::transport
