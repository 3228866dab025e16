// Live aclTensor descriptors of the CPU runtime (those aclCreateTensor returned and
// aclDestroyTensor has not yet released), so a façade can reject a stale or foreign pointer
// before reading through it.
#pragma once

struct aclTensor;

namespace moedist::runtime {

// False for null and for any pointer that is not a live descriptor. Thread-safe.
bool tensor_is_live(const aclTensor* tensor);

}  // namespace moedist::runtime
