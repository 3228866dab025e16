// Futex waits on 32-bit words, shared between processes (the words may live in a MAP_SHARED
// segment) or private to one. A wake is only a hint: callers re-check their condition.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace moedist::transport {

// Sleeps while *word == expected, at most `timeout` (spurious and early returns are allowed).
void futex_wait(std::atomic<uint32_t>* word,
                uint32_t expected,
                std::chrono::nanoseconds timeout,
                bool shared);

// Wakes every waiter on *word.
void futex_wake_all(std::atomic<uint32_t>* word, bool shared);

}  // namespace moedist::transport
