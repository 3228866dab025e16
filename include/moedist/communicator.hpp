// moedist/communicator.hpp — one rank's membership of a communication group.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "moedist/export.hpp"
#include "moedist/status.hpp"

namespace moedist {

namespace transport {
class Transport;
struct Access;
}  // namespace transport

// A copyable handle: this rank's endpoint of a group. Groups live as long as any handle (or any
// prepared operation) refers to them; destroying one rank's handle never disturbs peers.
class MOEDIST_API Communicator {
public:
    Communicator() = default;

    // Creates a group of `size` ranks that are threads of this process and returns every rank's
    // handle, index = rank. An empty name gets a name unique in the process.
    static std::vector<Communicator> create_local_group(int size, const std::string& name = "");

    // Finds the handle of `rank` in the group called `name` (as HcclGetCommName reports it).
    static Status find(const std::string& name, int rank, Communicator* out);

    bool valid() const { return endpoint_ != nullptr; }
    int rank() const;
    int size() const;
    const std::string& name() const;

private:
    friend struct transport::Access;
    explicit Communicator(std::shared_ptr<transport::Transport> endpoint)
        : endpoint_(std::move(endpoint)) {}

    std::shared_ptr<transport::Transport> endpoint_;
};

}  // namespace moedist
