// Fault injection for tests only: a function called by every rank right after it arrived in its
// EP group (its record published, nothing of its peers read yet), so a test can stall one rank
// mid-call. Null (the default) costs one relaxed load per call.
#pragma once

#include <atomic>

namespace moedist::core::test_hooks {

using MidCallHook = void (*)(int ep_rank);

extern std::atomic<MidCallHook> mid_call;  // defined in call_rounds.cpp

}  // namespace moedist::core::test_hooks
