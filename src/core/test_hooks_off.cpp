// The release library's test hooks: none.
#include "core/test_hooks.hpp"

namespace moedist::core::test_hooks {

void on_mid_call(int /*ep_rank*/) {}
bool set_mid_call(MidCallHook /*hook*/) { return false; }

}  // namespace moedist::core::test_hooks
