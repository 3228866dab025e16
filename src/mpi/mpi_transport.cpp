// The mpi backend: a group over an MPI communicator. Each node's ranks form a process group
// (shared memory, transport/process_group.hpp); records and flags of the two rounds travel over
// MPI; bytes between nodes go through exchange() (MPI point-to-point, or one MPI_Alltoallv).
// With a single node the endpoint is the node's process group itself.
//
//   global round 1: MPI_Iallgather of every rank's fixed record (kMaxRecordBytes)
//   global round 2: MPI_Iallgather of every rank's flag and one-line message
//   waits poll with MPI_Test (yielding) up to MOEDIST_TIMEOUT_MS; a wait that expires marks the
//   group broken (OpenMPI 4.1 cannot cancel a collective: the group stays broken for good)
#include <mpi.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <thread>
#include <vector>

#include "moedist/mpi.hpp"
#include "runtime/cluster.hpp"
#include "transport/access.hpp"
#include "transport/process_group.hpp"
#include "transport/registry.hpp"
#include "util/env.hpp"
#include "util/log.hpp"

namespace moedist {
namespace {

using transport::Clock;
using transport::Flag;
using transport::GroupRef;
using transport::RegionRef;
using transport::Transport;

struct FlagRecord {
    int32_t code = 0;
    char message[252] = {};
};

int ranks_per_node_setting() {
    const char* text = std::getenv("MOEDIST_RANKS_PER_NODE");
    if (text == nullptr || *text == '\0') return 0;
    const long n = std::strtol(text, nullptr, 10);
    return n > 0 && n < (1 << 20) ? static_cast<int>(n) : 0;
}

// MOEDIST_MPI_ALGO: how bytes cross nodes. p2p (default: measured fastest here), alltoallv, or
// rma (MPI one-sided: receivers MPI_Rget their rows from the senders' packed buffers).
enum class Algo { kP2p, kAlltoallv, kRma };
Algo mpi_algo() {
    const char* text = std::getenv("MOEDIST_MPI_ALGO");
    if (text != nullptr && std::strcmp(text, "alltoallv") == 0) return Algo::kAlltoallv;
    if (text != nullptr && std::strcmp(text, "rma") == 0) return Algo::kRma;
    return Algo::kP2p;
}

class MpiEndpoint final : public Transport {
public:
    MpiEndpoint(MPI_Comm comm,
                std::string name,
                std::vector<int> node_of,
                std::shared_ptr<Transport> node)
        : comm_(comm),
          name_(std::move(name)),
          node_of_(std::move(node_of)),
          node_(std::move(node)) {
        MPI_Comm_rank(comm_, &rank_);
        MPI_Comm_size(comm_, &size_);
        int nodes = 0;
        for (int n : node_of_) nodes = std::max(nodes, n + 1);
        node_ranks_.resize(static_cast<std::size_t>(nodes));
        for (int r = 0; r < size_; ++r) {
            local_of_.push_back(static_cast<int>(
                node_ranks_[static_cast<std::size_t>(node_of_[static_cast<std::size_t>(r)])]
                    .size()));
            node_ranks_[static_cast<std::size_t>(node_of_[static_cast<std::size_t>(r)])].push_back(
                r);
        }
        for (auto& buffer : records_)
            buffer.resize(static_cast<std::size_t>(size_) * kMaxRecordBytes);
        flags_.resize(static_cast<std::size_t>(size_));
        ref_.id = transport::new_group_id();
    }
    ~MpiEndpoint() override {
        if (win_ != MPI_WIN_NULL) {
            int finalized = 0;
            MPI_Finalized(&finalized);
            if (!finalized) {
                MPI_Win_unlock_all(win_);
                MPI_Win_free(&win_);
            }
        }
        MPI_Comm_free(&comm_);
    }

    int rank() const override { return rank_; }
    int size() const override { return size_; }
    const std::string& name() const override { return name_; }
    GroupRef ref() const override { return ref_; }
    bool same_address_space() const override { return false; }
    Status open_peer(const GroupRef&, int, std::shared_ptr<Transport>*) override {
        return {Code::kRuntime,
                "tpWorldSize = 2 must keep a group on one node with the mpi backend, got '" +
                    name_ + "' across " + std::to_string(node_ranks_.size()) + " nodes"};
    }

    uint64_t begin_call() override { return next_call_++; }
    void publish(uint64_t call, std::span<const std::byte> record) override {
        mine_.assign(kMaxRecordBytes, std::byte{0});
        std::memcpy(mine_.data(), record.data(), std::min(record.size(), kMaxRecordBytes));
        MPI_Iallgather(mine_.data(),
                       static_cast<int>(kMaxRecordBytes),
                       MPI_BYTE,
                       records_[call % 2].data(),
                       static_cast<int>(kMaxRecordBytes),
                       MPI_BYTE,
                       comm_,
                       &request_);
    }
    Status wait_published(uint64_t call, Clock::time_point deadline) override {
        if (Status s = wait(deadline, "arrive", call); !s.ok()) return s;
        return broken_status();
    }
    const std::byte* record(int rank, uint64_t call) const override {
        return records_[call % 2].data() + static_cast<std::size_t>(rank) * kMaxRecordBytes;
    }
    void finish(uint64_t /*call*/, int32_t flag, std::string_view message) override {
        my_flag_ = FlagRecord{};
        my_flag_.code = flag;
        std::memcpy(my_flag_.message,
                    message.data(),
                    std::min(message.size(), sizeof(my_flag_.message) - 1));
        MPI_Iallgather(&my_flag_,
                       sizeof(FlagRecord),
                       MPI_BYTE,
                       flags_.data(),
                       sizeof(FlagRecord),
                       MPI_BYTE,
                       comm_,
                       &request_);
    }
    Status wait_finished(uint64_t call, Clock::time_point deadline, Flag* flag) override {
        if (Status s = wait(deadline, "depart", call); !s.ok()) return s;
        *flag = Flag{};
        for (int r = 0; r < size_; ++r) {
            const FlagRecord& f = flags_[static_cast<std::size_t>(r)];
            if (f.code != 0) {
                *flag =
                    Flag{f.code, r, std::string(f.message, strnlen(f.message, sizeof(f.message)))};
                break;
            }
        }
        return broken_status();
    }
    std::string gone(int rank) override {
        if (node_of_[static_cast<std::size_t>(rank)] != my_node()) return {};
        return node_->gone(local_of_[static_cast<std::size_t>(rank)]);
    }
    void mark_broken(const std::string& reason) override {
        if (broken_.empty()) {
            broken_ = reason;
            MOEDIST_LOG(kWarn, "communicator '{}' is broken: {}", name_, reason);
        }
    }
    Status broken_status() const override {
        if (broken_.empty()) return Status::Ok();
        return {Code::kRuntime,
                "communicator '" + name_ + "' must not be broken, got broken by: " + broken_};
    }
    Status expose(const void* data, std::size_t bytes, int stage, RegionRef* out) override {
        return node_->expose(data, bytes, stage, out);
    }
    const std::byte* map(int rank, const RegionRef& region) override {
        if (node_of_[static_cast<std::size_t>(rank)] != my_node()) return nullptr;
        return node_->map(local_of_[static_cast<std::size_t>(rank)], region);
    }
    void* scratch(int slot, std::size_t bytes) override { return node_->scratch(slot, bytes); }

    int node_count() const override { return static_cast<int>(node_ranks_.size()); }
    int node_of(int rank) const override { return node_of_[static_cast<std::size_t>(rank)]; }
    std::span<const int> node_ranks(int node) const override {
        return node_ranks_[static_cast<std::size_t>(node)];
    }
    Transport* node_group() override { return node_.get(); }

    Status exchange(std::span<const std::span<const std::byte>> send,
                    std::span<const std::span<std::byte>> recv,
                    Clock::time_point deadline) override {
        if (!broken_.empty()) return broken_status();
        switch (mpi_algo()) {
            case Algo::kAlltoallv:
                return exchange_alltoallv(send, recv, deadline);
            case Algo::kRma:
                return exchange_rma(send, recv, deadline);
            case Algo::kP2p:
                break;
        }
        return exchange_p2p(send, recv, deadline);
    }

private:
    int my_node() const { return node_of_[static_cast<std::size_t>(rank_)]; }

    Status wait(Clock::time_point deadline, const char* round, uint64_t call) {
        if (request_ == MPI_REQUEST_NULL) return broken_status();
        for (int spins = 0;; ++spins) {
            int done = 0;
            if (MPI_Test(&request_, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
                mark_broken(std::string("MPI must complete the ") + round + " round, got an error");
                return broken_status();
            }
            if (done) return Status::Ok();
            if (Clock::now() >= deadline) {
                // OpenMPI 4.1 cannot tell which rank is missing nor cancel the collective; a
                // rank of this node that died is named through its pidfd.
                std::string who = "a rank of '" + name_ + "'";
                for (int r : node_ranks_[static_cast<std::size_t>(my_node())]) {
                    if (std::string why = gone(r); !why.empty()) {
                        mark_broken(why);
                        return broken_status();
                    }
                }
                mark_broken(who + " must " + round + " within MOEDIST_TIMEOUT_MS = " +
                            std::to_string(util::timeout_ms()) + " ms, got no " + round +
                            " (call " + std::to_string(call) + "; MPI does not say which rank)");
                request_ = MPI_REQUEST_NULL;  // abandoned: the group is broken for good
                return broken_status();
            }
            if (spins > 64) std::this_thread::yield();
        }
    }

    Status finish_requests(std::vector<MPI_Request>& requests, Clock::time_point deadline) {
        for (;;) {
            int done = 0;
            if (MPI_Testall(static_cast<int>(requests.size()),
                            requests.data(),
                            &done,
                            MPI_STATUSES_IGNORE) != MPI_SUCCESS) {
                mark_broken("MPI must move the rows between nodes, got an error");
                return broken_status();
            }
            if (done) return Status::Ok();
            if (Clock::now() >= deadline) {
                mark_broken("every rank of '" + name_ +
                            "' must move its rows between nodes within MOEDIST_TIMEOUT_MS = " +
                            std::to_string(util::timeout_ms()) + " ms, got a transfer still open");
                return broken_status();
            }
            std::this_thread::yield();
        }
    }

    Status exchange_p2p(std::span<const std::span<const std::byte>> send,
                        std::span<const std::span<std::byte>> recv,
                        Clock::time_point deadline) {
        constexpr int kTag = 7207;
        constexpr std::size_t kChunk = std::size_t{1} << 30;
        std::vector<MPI_Request> requests;
        for (int r = 0; r < size_; ++r) {
            const auto& in = recv[static_cast<std::size_t>(r)];
            for (std::size_t at = 0; at < in.size(); at += kChunk) {
                requests.emplace_back();
                MPI_Irecv(in.data() + at,
                          static_cast<int>(std::min(kChunk, in.size() - at)),
                          MPI_BYTE,
                          r,
                          kTag,
                          comm_,
                          &requests.back());
            }
        }
        for (int r = 0; r < size_; ++r) {
            const auto& out = send[static_cast<std::size_t>(r)];
            for (std::size_t at = 0; at < out.size(); at += kChunk) {
                requests.emplace_back();
                MPI_Isend(out.data() + at,
                          static_cast<int>(std::min(kChunk, out.size() - at)),
                          MPI_BYTE,
                          r,
                          kTag,
                          comm_,
                          &requests.back());
            }
        }
        return finish_requests(requests, deadline);
    }

    Status exchange_alltoallv(std::span<const std::span<const std::byte>> send,
                              std::span<const std::span<std::byte>> recv,
                              Clock::time_point deadline) {
        std::vector<int> send_counts(static_cast<std::size_t>(size_)),
            send_displs(send_counts.size());
        std::vector<int> recv_counts(send_counts.size()), recv_displs(send_counts.size());
        std::size_t send_total = 0, recv_total = 0;
        for (int r = 0; r < size_; ++r) {
            const auto i = static_cast<std::size_t>(r);
            send_displs[i] = static_cast<int>(send_total);
            send_counts[i] = static_cast<int>(send[i].size());
            send_total += send[i].size();
            recv_displs[i] = static_cast<int>(recv_total);
            recv_counts[i] = static_cast<int>(recv[i].size());
            recv_total += recv[i].size();
        }
        if (send_total > INT32_MAX || recv_total > INT32_MAX)
            return {Code::kRuntime, "MOEDIST_MPI_ALGO=alltoallv must move under 2 GiB per call"};
        send_buffer_.resize(send_total);
        recv_buffer_.resize(recv_total);
        for (int r = 0; r < size_; ++r) {
            const auto i = static_cast<std::size_t>(r);
            if (!send[i].empty())
                std::memcpy(send_buffer_.data() + send_displs[i], send[i].data(), send[i].size());
        }
        std::vector<MPI_Request> request(1);
        MPI_Ialltoallv(send_buffer_.data(),
                       send_counts.data(),
                       send_displs.data(),
                       MPI_BYTE,
                       recv_buffer_.data(),
                       recv_counts.data(),
                       recv_displs.data(),
                       MPI_BYTE,
                       comm_,
                       &request[0]);
        if (Status s = finish_requests(request, deadline); !s.ok()) return s;
        for (int r = 0; r < size_; ++r) {
            const auto i = static_cast<std::size_t>(r);
            if (!recv[i].empty())
                std::memcpy(recv[i].data(), recv_buffer_.data() + recv_displs[i], recv[i].size());
        }
        return Status::Ok();
    }

    // One-sided: every rank packs its sends into its window (MPI_Win_allocate, passive target),
    // one MPI_Allgather tells every rank every sender's layout (so all agree when the windows
    // must grow, collectively), receivers MPI_Rget their bytes, and an MPI_Ibarrier keeps each
    // window unchanged until every reader is done.
    Status exchange_rma(std::span<const std::span<const std::byte>> send,
                        std::span<const std::span<std::byte>> recv,
                        Clock::time_point deadline) {
        const auto n = static_cast<std::size_t>(size_);
        // layout[s * (n + 1) + r]: where sender s's bytes for r start; [s * (n + 1) + n]: its
        // total.
        std::vector<MPI_Aint> mine(n + 1), layout(n * (n + 1));
        MPI_Aint total = 0;
        for (std::size_t r = 0; r < n; ++r) {
            mine[r] = total;
            total += static_cast<MPI_Aint>(send[r].size());
        }
        mine[n] = total;
        std::vector<MPI_Request> requests(1);
        MPI_Iallgather(mine.data(),
                       static_cast<int>(n + 1),
                       MPI_AINT,
                       layout.data(),
                       static_cast<int>(n + 1),
                       MPI_AINT,
                       comm_,
                       &requests[0]);
        if (Status s = finish_requests(requests, deadline); !s.ok()) return s;
        MPI_Aint largest = 64;
        for (std::size_t s = 0; s < n; ++s) largest = std::max(largest, layout[s * (n + 1) + n]);
        if (win_ == MPI_WIN_NULL || largest > window_bytes_) {
            if (win_ != MPI_WIN_NULL) {
                MPI_Win_unlock_all(win_);
                MPI_Win_free(&win_);
            }
            window_bytes_ = std::max(largest, window_bytes_ * 2);
            if (MPI_Win_allocate(window_bytes_, 1, MPI_INFO_NULL, comm_, &window_, &win_) !=
                MPI_SUCCESS) {
                win_ = MPI_WIN_NULL;
                mark_broken("MOEDIST_MPI_ALGO=rma must get an MPI one-sided window of " +
                            std::to_string(window_bytes_) +
                            " bytes, got none from this MPI (OpenMPI with MPI_THREAD_MULTIPLE: "
                            "--mca osc ucx)");
                return broken_status();
            }
            MPI_Win_set_errhandler(win_, MPI_ERRORS_RETURN);
            MPI_Win_lock_all(MPI_MODE_NOCHECK, win_);
        }
        auto* window = static_cast<std::byte*>(window_);
        for (std::size_t r = 0; r < n; ++r) {
            if (!send[r].empty()) std::memcpy(window + mine[r], send[r].data(), send[r].size());
        }
        MPI_Win_sync(win_);
        requests.assign(1, MPI_REQUEST_NULL);
        MPI_Ibarrier(comm_, &requests[0]);  // every window is filled before anyone reads
        if (Status s = finish_requests(requests, deadline); !s.ok()) return s;
        constexpr std::size_t kChunk = std::size_t{1} << 30;
        requests.clear();
        for (std::size_t r = 0; r < n; ++r) {
            const auto& in = recv[r];
            const MPI_Aint start = layout[r * (n + 1) + static_cast<std::size_t>(rank_)];
            for (std::size_t at = 0; at < in.size(); at += kChunk) {
                const int count = static_cast<int>(std::min(kChunk, in.size() - at));
                requests.emplace_back();
                if (MPI_Rget(in.data() + at,
                             count,
                             MPI_BYTE,
                             static_cast<int>(r),
                             start + static_cast<MPI_Aint>(at),
                             count,
                             MPI_BYTE,
                             win_,
                             &requests.back()) != MPI_SUCCESS) {
                    requests.pop_back();
                    mark_broken("MPI must read rows of rank " + std::to_string(r) +
                                " one-sided, got an error");
                    (void)finish_requests(requests, deadline);
                    return broken_status();
                }
            }
        }
        if (Status s = finish_requests(requests, deadline); !s.ok()) return s;
        requests.assign(1, MPI_REQUEST_NULL);
        MPI_Ibarrier(comm_, &requests[0]);
        return finish_requests(requests, deadline);
    }

    MPI_Aint window_bytes_ = 0;
    void* window_ = nullptr;
    MPI_Win win_ = MPI_WIN_NULL;
    MPI_Comm comm_;
    int rank_ = 0, size_ = 0;
    std::string name_;
    std::vector<int> node_of_;
    std::vector<int> local_of_;
    std::vector<std::vector<int>> node_ranks_;
    std::shared_ptr<Transport> node_;
    GroupRef ref_;
    uint64_t next_call_ = 0;
    std::vector<std::byte> mine_;
    std::vector<std::byte> records_[2];
    FlagRecord my_flag_;
    std::vector<FlagRecord> flags_;
    MPI_Request request_ = MPI_REQUEST_NULL;
    std::string broken_;
    std::vector<std::byte> send_buffer_, recv_buffer_;
};

Status check(int rc, const char* what) {
    if (rc == MPI_SUCCESS) return Status::Ok();
    return {Code::kRuntime,
            std::string(what) + " must succeed, got MPI error " + std::to_string(rc)};
}

}  // namespace

Status from_mpi(MPI_Comm comm, Communicator* out) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) return {Code::kRuntime, "MPI must be initialized before from_mpi, got not"};
    MPI_Comm dup = MPI_COMM_NULL;
    if (Status s = check(MPI_Comm_dup(comm, &dup), "MPI_Comm_dup"); !s.ok()) return s;
    MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
    int rank = 0, size = 0;
    MPI_Comm_rank(dup, &rank);
    MPI_Comm_size(dup, &size);
    // Nodes: ranks sharing memory, or simulated nodes of n consecutive ranks.
    MPI_Comm node = MPI_COMM_NULL;
    const int per_node = ranks_per_node_setting();
    if (per_node > 0) {
        MPI_Comm_split(dup, rank / per_node, rank, &node);
    } else {
        MPI_Comm_split_type(dup, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    }
    int local = 0, local_size = 0;
    MPI_Comm_rank(node, &local);
    MPI_Comm_size(node, &local_size);
    // Node ids: the global rank of each node's first member, renumbered 0..nodes-1.
    int leader = rank;
    MPI_Bcast(&leader, 1, MPI_INT, 0, node);
    std::vector<int> leaders(static_cast<std::size_t>(size));
    MPI_Allgather(&leader, 1, MPI_INT, leaders.data(), 1, MPI_INT, dup);
    std::map<int, int> numbering;
    for (int l : leaders) numbering.emplace(l, 0);
    int next = 0;
    for (auto& [l, id] : numbering) id = next++;
    std::vector<int> node_of(static_cast<std::size_t>(size));
    for (int r = 0; r < size; ++r)
        node_of[static_cast<std::size_t>(r)] = numbering[leaders[static_cast<std::size_t>(r)]];
    // A name every rank agrees on: rank 0's pid and a counter.
    static int counter = 0;
    int tag[2] = {static_cast<int>(getpid()), counter++};
    MPI_Bcast(tag, 2, MPI_INT, 0, dup);
    const std::string name = "mpi_" + std::to_string(tag[0]) + "_" + std::to_string(tag[1]);
    const std::string node_name =
        name + "_node" + std::to_string(node_of[static_cast<std::size_t>(rank)]);
    std::shared_ptr<transport::Transport> node_endpoint;
    Status joined = transport::join_process_group(
        local,
        local_size,
        node_name,
        [&](std::span<const std::byte> mine, std::vector<std::byte>* all) -> Status {
            all->resize(mine.size() * static_cast<std::size_t>(local_size));
            return check(MPI_Allgather(mine.data(),
                                       static_cast<int>(mine.size()),
                                       MPI_BYTE,
                                       all->data(),
                                       static_cast<int>(mine.size()),
                                       MPI_BYTE,
                                       node),
                         "MPI_Allgather (node bootstrap)");
        },
        &node_endpoint,
        /*register_endpoint=*/next == 1);
    MPI_Comm_free(&node);
    int ok = joined.ok() ? 1 : 0, all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, dup);
    if (!all_ok) {
        MPI_Comm_free(&dup);
        return joined.ok()
                   ? Status(Code::kRuntime,
                            "a node of the MPI group must form, got a failure on another rank")
                   : joined;
    }
    if (next == 1) {  // one node: the process group is the group
        MPI_Comm_free(&dup);
        *out = transport::Access::make(std::move(node_endpoint));
        return Status::Ok();
    }
    auto endpoint =
        std::make_shared<MpiEndpoint>(dup, name, std::move(node_of), std::move(node_endpoint));
    std::vector<std::shared_ptr<transport::Transport>> endpoints(static_cast<std::size_t>(size));
    endpoints[static_cast<std::size_t>(rank)] = endpoint;
    transport::register_group(name, endpoint->ref().id, size, endpoints);
    *out = transport::Access::make(std::move(endpoint));
    return Status::Ok();
}

namespace {

// HcclCommInitClusterInfo under mpirun: the table's rank r is MPI rank r of MPI_COMM_WORLD
// (MPI initialized here when the program has not; finalized at exit).
Status join_cluster_over_mpi(int rank, int size, Communicator* out) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
        int provided = 0;
        MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
        std::atexit([] {
            int finalized = 0;
            MPI_Finalized(&finalized);
            if (!finalized) MPI_Finalize();
        });
    }
    int world = 0, me = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    MPI_Comm_rank(MPI_COMM_WORLD, &me);
    if (world != size || me != rank) {
        return {Code::kRuntime,
                "the rank table's ranks must be the MPI ranks (mpirun -np " + std::to_string(size) +
                    ", each process its own rank), got MPI rank " + std::to_string(me) + " of " +
                    std::to_string(world) + " for table rank " + std::to_string(rank)};
    }
    return from_mpi(MPI_COMM_WORLD, out);
}

const bool registered = [] {
    runtime::set_mpi_cluster_join(&join_cluster_over_mpi);
    return true;
}();

}  // namespace

}  // namespace moedist
