// The release library's test hooks: none.
#include "core/test_hooks.hpp"

namespace moedist::core::test_hooks {

void on_mid_call(int /*ep_rank*/) {}
bool set_mid_call(MidCallHook /*hook*/) { return false; }
void on_record(int /*ep_rank*/, void* /*record*/, unsigned long /*bytes*/) {}
bool set_record(RecordHook /*hook*/) { return false; }

}  // namespace moedist::core::test_hooks
