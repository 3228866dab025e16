// moedist/communicator.hpp — one rank's membership of a communication group.
//
//   auto ranks = moedist::Communicator::create_local_group(8);  // 8 ranks: threads of this process
//   moedist::Communicator c;                                    // or this process's rank of a
//   group: moedist::throw_if_error(moedist::Communicator::from_rank_table("ranks.json", rank, &c));
//   moedist::throw_if_error(moedist::Communicator::join_processes(rank, size, "job-7", all_gather,
//   &c)); void* p = moedist::shared_allocate(bytes);                  // memory peers read in place
//
// A group lives while any rank's handle refers to it. After a timeout or a dead peer it is
// broken for good: every rank drops its handles and the group is made again
// (docs/contract.md §7).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "moedist/export.hpp"
#include "moedist/status.hpp"

namespace moedist {

// Memory from moedist's shared-memory arena (what aclrtMalloc gives): ranks that are processes of
// one host read and write tensors in it in place; other memory is staged once per call. At least
// `bytes` (64-byte aligned; zero the first time its pages are used), or null when the system
// refuses. shared_free takes back what shared_allocate gave (anything else is ignored).
MOEDIST_API void* shared_allocate(std::size_t bytes);
MOEDIST_API void shared_free(void* p);

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

    // An all-gather among the members of a group being formed: every member passes its bytes
    // (the same length everywhere); `all` receives every member's, in rank order. MPI's
    // MPI_Allgather, torch.distributed's all_gather or a socket exchange serve.
    using AllGather =
        std::function<Status(const std::vector<std::byte>& mine, std::vector<std::byte>* all)>;

    // Joins rank `rank` of a group of `size` ranks that are processes (or threads of them),
    // bootstrapped over `all_gather` (called twice by every member on one host). Members on
    // several hosts (told apart by boot and network namespace, or MOEDIST_SERVER_ID) form one
    // group: shared memory within each host, UCX between hosts (all_gather then runs four
    // times). `name` must be the same on every member and unique among the host's live groups.
    // Tensors of aclrtMalloc (and of moedist::shared_allocate) are read by peers on their host in
    // place; other memory is staged once per call. 361001 when the group cannot form.
    static Status join_processes(int rank,
                                 int size,
                                 const std::string& name,
                                 const AllGather& all_gather,
                                 Communicator* out);

    // Joins rank `rank` of the group a rank table (HCCL's JSON: server_list / group_list) lists,
    // as HcclCommInitClusterInfo does: every rank of the table, in whatever process of this host
    // it runs, calls this; they find each other through the table's path.
    static Status from_rank_table(const std::string& path, int rank, Communicator* out);

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
