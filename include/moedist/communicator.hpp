// moedist/communicator.hpp — one rank's membership of a communication group.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "moedist/export.hpp"
#include "moedist/status.hpp"

namespace moedist {

namespace transport {
class LocalGroup;
}

// A copyable handle: a group and this handle's rank in it. Groups live as long as any handle
// (or any prepared operation) refers to them; destroying one rank's handle never disturbs peers.
class MOEDIST_API Communicator {
public:
    Communicator() = default;

    // Creates a group of `size` ranks that are threads of this process and returns every rank's
    // handle, index = rank. An empty name gets a name unique in the process.
    static std::vector<Communicator> create_local_group(int size, const std::string& name = "");

    // Finds the handle of `rank` in the group called `name` (as HcclGetCommName reports it).
    static Status find(const std::string& name, int rank, Communicator* out);

    bool valid() const { return group_ != nullptr; }
    int rank() const { return rank_; }
    int size() const;
    const std::string& name() const;

    // The transport behind this handle (internal use by moedist's executors).
    const std::shared_ptr<transport::LocalGroup>& group() const { return group_; }

private:
    Communicator(std::shared_ptr<transport::LocalGroup> group, int rank)
        : group_(std::move(group)), rank_(rank) {}

    std::shared_ptr<transport::LocalGroup> group_;
    int rank_ = -1;
};

}  // namespace moedist
