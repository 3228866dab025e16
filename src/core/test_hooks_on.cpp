// The test suite's hooks (moedist_testing only).
#include <atomic>

#include "core/test_hooks.hpp"

namespace moedist::core::test_hooks {
namespace {
std::atomic<MidCallHook> mid_call{nullptr};
}

void on_mid_call(int ep_rank) {
    if (MidCallHook hook = mid_call.load(std::memory_order_relaxed)) hook(ep_rank);
}

bool set_mid_call(MidCallHook hook) {
    mid_call.store(hook, std::memory_order_relaxed);
    return true;
}

}  // namespace moedist::core::test_hooks
