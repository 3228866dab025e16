// moedist's own access to the endpoint behind a public Communicator (not in the public headers).
#pragma once

#include <memory>

#include "moedist/communicator.hpp"
#include "transport/transport.hpp"

namespace moedist::transport {

struct Access {
    static const std::shared_ptr<Transport>& endpoint(const Communicator& c) { return c.endpoint_; }
    static Communicator make(std::shared_ptr<Transport> endpoint) {
        return Communicator(std::move(endpoint));
    }
};

}  // namespace moedist::transport
