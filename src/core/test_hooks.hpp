// Fault injection for tests only. The release library (and moedist_static) link
// test_hooks_off.cpp, where every hook is a no-op; only the test suite's moedist_testing links
// test_hooks_on.cpp, where a test can install a function.
#pragma once

namespace moedist::core::test_hooks {

using MidCallHook = void (*)(int ep_rank);

// Called by every rank right after it arrived in its EP group (its record published, nothing of
// its peers read yet), so a test can stall one rank mid-call.
void on_mid_call(int ep_rank);

// moedist_testing only: installs `hook` (null removes it); false in the release library.
bool set_mid_call(MidCallHook hook);

using RecordHook = void (*)(int ep_rank, void* record, unsigned long bytes);

// Called by every rank with its record just before publishing it, so a test can forge what a
// peer process publishes.
void on_record(int ep_rank, void* record, unsigned long bytes);
bool set_record(RecordHook hook);

}  // namespace moedist::core::test_hooks
