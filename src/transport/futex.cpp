#include "transport/futex.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <ctime>

namespace moedist::transport {

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t));

void futex_wait(std::atomic<uint32_t>* word,
                uint32_t expected,
                std::chrono::nanoseconds timeout,
                bool shared) {
    if (timeout.count() <= 0) return;
    timespec ts;
    ts.tv_sec = static_cast<time_t>(timeout.count() / 1000000000);
    ts.tv_nsec = static_cast<long>(timeout.count() % 1000000000);
    syscall(SYS_futex,
            reinterpret_cast<uint32_t*>(word),
            shared ? FUTEX_WAIT : FUTEX_WAIT_PRIVATE,
            expected,
            &ts,
            nullptr,
            0);
}

void futex_wake_all(std::atomic<uint32_t>* word, bool shared) {
    syscall(SYS_futex,
            reinterpret_cast<uint32_t*>(word),
            shared ? FUTEX_WAKE : FUTEX_WAKE_PRIVATE,
            INT_MAX,
            nullptr,
            nullptr,
            0);
}

}  // namespace moedist::transport
