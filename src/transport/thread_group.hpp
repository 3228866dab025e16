// Ranks as threads of one process: the control block on the heap, memory named by its address.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "transport/transport.hpp"

namespace moedist::transport {

// A new group of `size` thread ranks named `name` (unique among live groups of the process:
// a taken name gets a "#k" suffix; empty: "moedist_comm_<n>"); one endpoint per rank.
std::vector<std::shared_ptr<Transport>> create_thread_group(int size, const std::string& name);

}  // namespace moedist::transport
