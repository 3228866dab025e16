// The test suite's hooks (moedist_testing only).
#include <atomic>

#include "core/test_hooks.hpp"

namespace moedist::core::test_hooks {
namespace {
std::atomic<MidCallHook> mid_call{nullptr};
std::atomic<RecordHook> record_hook{nullptr};
}

void on_record(int ep_rank, void* record, unsigned long bytes) {
    if (RecordHook hook = record_hook.load(std::memory_order_relaxed)) hook(ep_rank, record, bytes);
}

bool set_record(RecordHook hook) {
    record_hook.store(hook, std::memory_order_relaxed);
    return true;
}

void on_mid_call(int ep_rank) {
    if (MidCallHook hook = mid_call.load(std::memory_order_relaxed)) hook(ep_rank);
}

bool set_mid_call(MidCallHook hook) {
    mid_call.store(hook, std::memory_order_relaxed);
    return true;
}

}  // namespace moedist::core::test_hooks
