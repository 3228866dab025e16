// An endpoint whose group forms in the background: the join starts at once on a thread of its
// own and the first use of the endpoint waits for it. HcclCommInitClusterInfo returns such an
// endpoint, so one thread may initialize several ranks of a table one after the other (the
// group forms once all have started) while ranks in separate processes still meet as early as
// they can. A failed join makes every call fail with its reason (361001).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "transport/transport.hpp"

namespace moedist::transport {

using Join = std::function<Status(std::shared_ptr<Transport>* out)>;

// Rank `rank` of the group `name` of `size` ranks, joined by `join` in the background; also
// registered under `name` (Communicator::find) right away.
std::shared_ptr<Transport> deferred_endpoint(const std::string& name,
                                             int rank,
                                             int size,
                                             Join join);

}  // namespace moedist::transport
