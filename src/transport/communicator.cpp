#include "moedist/communicator.hpp"

#include "transport/access.hpp"
#include "transport/process_group.hpp"
#include "transport/registry.hpp"
#include "transport/shm_arena.hpp"
#include "transport/thread_group.hpp"
#include "ucx/ucx_engine.hpp"

namespace moedist {

void* shared_allocate(std::size_t bytes) { return transport::arena_allocate(bytes); }

void shared_free(void* p) {
    if (p != nullptr) transport::arena_free(p);
}

std::vector<Communicator> Communicator::create_local_group(int size, const std::string& name) {
    std::vector<Communicator> handles;
    for (auto& endpoint : transport::create_thread_group(size, name))
        handles.push_back(transport::Access::make(std::move(endpoint)));
    return handles;
}

Status Communicator::find(const std::string& name, int rank, Communicator* out) {
    int size = -1;
    std::shared_ptr<transport::Transport> endpoint = transport::find_endpoint(name, rank, &size);
    if (size < 0) {
        return {Code::kInnerTiling, "group must name a live communicator, got '" + name + "'"};
    }
    if (rank < 0 || rank >= size) {
        return {Code::kInnerTiling,
                "rank in communicator '" + name + "' must be in [0, " + std::to_string(size) +
                    "), got " + std::to_string(rank)};
    }
    if (endpoint == nullptr) {
        return {Code::kInnerTiling,
                "rank " + std::to_string(rank) + " of communicator '" + name +
                    "' must be held by this process, got a rank this process has not joined "
                    "(or has destroyed)"};
    }
    *out = transport::Access::make(std::move(endpoint));
    return Status::Ok();
}

Status Communicator::join_processes(
    int rank, int size, const std::string& name, const AllGather& all_gather, Communicator* out) {
    if (!all_gather) return {Code::kNullptr, "all_gather must be a function, got none"};
    if (name.empty() || name.size() >= 128) {
        return {Code::kNullptr,
                "name length must be in [1, 128), got " + std::to_string(name.size())};
    }
    std::shared_ptr<transport::Transport> endpoint;
    auto gather = [&](std::span<const std::byte> mine, std::vector<std::byte>* all) {
        return all_gather(std::vector<std::byte>(mine.begin(), mine.end()), all);
    };
    if (Status s = ucx::join_over(rank, size, name, gather, &endpoint); !s.ok()) return s;
    *out = transport::Access::make(std::move(endpoint));
    return Status::Ok();
}

int Communicator::rank() const { return endpoint_ ? endpoint_->rank() : -1; }
int Communicator::size() const { return endpoint_ ? endpoint_->size() : 0; }

const std::string& Communicator::name() const {
    static const std::string empty;
    return endpoint_ ? endpoint_->name() : empty;
}

}  // namespace moedist
