// The mpi backend: a group over an MPI communicator. Each node's ranks form a process group
// (shared memory, transport/process_group.hpp); records and flags of the two rounds travel over
// MPI; bytes between nodes go through exchange() (MPI point-to-point, or one MPI_Alltoallv).
// With a single node the endpoint is the node's process group itself.
//
//   from_mpi:      every rank first sends its settings (MOEDIST_RANKS_PER_NODE, the table rank it
//                  was given) to rank 0, which answers every rank with one verdict, so ranks that
//                  disagree all fail, and a rank that never comes is named; then the splits
//   global round 1: every rank's fixed record (kMaxRecordBytes) to every other, point-to-point
//   global round 2: every rank's flag and one-line message, the same way
//   waits poll with MPI_Test (yielding) up to MOEDIST_TIMEOUT_MS and name the first rank whose
//   message has not come; a wait that expires marks the group broken for good (OpenMPI 4.1
//   cannot cancel what is in flight)
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
#include "transport/node_endpoint.hpp"
#include "transport/process_group.hpp"
#include "transport/registry.hpp"
#include "util/env.hpp"
#include "util/log.hpp"
#include "util/peer_text.hpp"

namespace moedist {
namespace {

using transport::Clock;
using transport::Flag;
using transport::GroupRef;
using transport::RegionRef;
using transport::Transport;

constexpr int kRecordTag = 7301;
constexpr int kFlagTag = 7302;
constexpr int kSettingsTag = 32749;  // from_mpi's agreement, on the caller's communicator
constexpr int kVerdictTag = 32747;

// MOEDIST_MPI_ALGO: how bytes cross nodes. p2p (default: measured fastest here), alltoallv, or
// rma (MPI one-sided: receivers MPI_Rget their rows from the senders' packed buffers).
enum class Algo { kP2p, kAlltoallv, kRma };
Algo mpi_algo() {
    const std::string algo = util::mpi_algo();
    if (algo == "alltoallv") return Algo::kAlltoallv;
    if (algo == "rma") return Algo::kRma;
    return Algo::kP2p;
}

// Polls `requests` until all complete or `deadline`; the index of the first one still open, or
// -1 when all completed (-2 on an MPI error, -3 when this thread's interrupt check fired).
int wait_all(std::vector<MPI_Request>& requests, transport::Clock::time_point deadline) {
    auto next_check = transport::Clock::now() + std::chrono::milliseconds(10);
    for (int spins = 0;; ++spins) {
        int done = 0;
        if (MPI_Testall(
                static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE) !=
            MPI_SUCCESS)
            return -2;
        if (done) return -1;
        if (transport::Clock::now() >= deadline) {
            // Each request on its own: the completed ones become MPI_REQUEST_NULL.
            int first_open = -1;
            for (std::size_t i = 0; i < requests.size(); ++i) {
                int one = 0;
                if (requests[i] != MPI_REQUEST_NULL) {
                    MPI_Test(&requests[i], &one, MPI_STATUS_IGNORE);
                    if (!one && first_open < 0) first_open = static_cast<int>(i);
                }
            }
            return first_open;
        }
        if (spins > 64) std::this_thread::yield();
        if (const char* why = nullptr; transport::Clock::now() >= next_check) {
            if (transport::interrupted(&why)) return -3;
            next_check = transport::Clock::now() + std::chrono::milliseconds(10);
        }
    }
}

int comm_rank(MPI_Comm comm) {
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    return rank;
}

class MpiEndpoint final : public transport::NodeEndpoint {
public:
    MpiEndpoint(MPI_Comm comm,
                std::string name,
                std::vector<int> node_of,
                std::shared_ptr<Transport> node,
                uint64_t group_id)
        : NodeEndpoint(
              std::move(name), comm_rank(comm), std::move(node_of), std::move(node), group_id),
          comm_(comm) {
        for (auto& buffer : records_)
            buffer.resize(static_cast<std::size_t>(size_) * kMaxRecordBytes);
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

    // The sends of my open rounds (the second half of each block of 2·size) complete.
    void settle_sends(Clock::time_point deadline) override {
        for (;;) {
            bool open = false;
            for (std::size_t i = 0; i < requests_.size(); ++i) {
                const auto in_block = static_cast<int>(i % static_cast<std::size_t>(2 * size_));
                if (in_block < size_ || requests_[i] == MPI_REQUEST_NULL) continue;
                int done = 0;
                MPI_Test(&requests_[i], &done, MPI_STATUS_IGNORE);
                open = open || done == 0;
            }
            if (!open || Clock::now() >= deadline) return;
            std::this_thread::yield();
        }
    }

    uint64_t begin_call() override { return next_call_++; }
    void publish(uint64_t call, std::span<const std::byte> record) override {
        // An aborted call (publish + finish without waits) leaves its rounds open: they complete
        // before mine_ is reused (its peers have come to that call by the time they come to this).
        if (!requests_.empty()) (void)wait(transport::call_deadline(), "depart", call - 1);
        mine_.assign(kMaxRecordBytes, std::byte{0});
        std::memcpy(mine_.data(), record.data(), std::min(record.size(), kMaxRecordBytes));
        std::byte* all = records_[call % 2].data();
        std::memcpy(
            all + static_cast<std::size_t>(rank_) * kMaxRecordBytes, mine_.data(), kMaxRecordBytes);
        post(mine_.data(), all, kMaxRecordBytes, kRecordTag);
    }
    Status wait_published(uint64_t call, Clock::time_point deadline, int64_t* arrival_us) override {
        const auto start = Clock::now();
        if (Status s = wait(deadline, "arrive", call); !s.ok()) return s;
        if (arrival_us != nullptr) {  // MPI says when the round completed, not per rank
            const int64_t us =
                std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start).count();
            std::fill(arrival_us, arrival_us + size_, us);
        }
        return broken_status();
    }
    const std::byte* record(int rank, uint64_t call) const override {
        return records_[call % 2].data() + static_cast<std::size_t>(rank) * kMaxRecordBytes;
    }
    void finish(uint64_t /*call*/, int32_t flag, std::string_view message) override {
        set_my_flag(flag, message);
        post(reinterpret_cast<const std::byte*>(&my_flag_),
             reinterpret_cast<std::byte*>(flags_.data()),
             sizeof(FlagRecord),
             kFlagTag);
    }
    Status wait_finished(uint64_t call, Clock::time_point deadline, Flag* flag) override {
        if (Status s = wait(deadline, "depart", call); !s.ok()) return s;
        return first_flag(flag);
    }

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
    // One round: my `bytes` to every other rank, theirs into all[r · bytes], appended to the open
    // requests (in blocks of 2·size: the receive from r at r, the send to r at size + r).
    void post(const std::byte* mine, std::byte* all, std::size_t bytes, int tag) {
        const std::size_t base = requests_.size();
        requests_.resize(base + static_cast<std::size_t>(2 * size_), MPI_REQUEST_NULL);
        for (int r = 0; r < size_; ++r) {
            if (r == rank_) continue;
            MPI_Irecv(all + static_cast<std::size_t>(r) * bytes,
                      static_cast<int>(bytes),
                      MPI_BYTE,
                      r,
                      tag,
                      comm_,
                      &requests_[base + static_cast<std::size_t>(r)]);
        }
        for (int r = 0; r < size_; ++r) {
            if (r == rank_) continue;
            MPI_Isend(mine,
                      static_cast<int>(bytes),
                      MPI_BYTE,
                      r,
                      tag,
                      comm_,
                      &requests_[base + static_cast<std::size_t>(size_ + r)]);
        }
    }

    Status wait(Clock::time_point deadline, const char* round, uint64_t call) {
        if (requests_.empty()) return broken_status();
        if (!broken_.empty()) {  // this call failed here already: my sends tell the peers so,
            (void)wait_all(requests_,
                           std::min(deadline, Clock::now() + std::chrono::milliseconds(100)));
            requests_.clear();  // and nothing they send can change the outcome (abandoned)
            return broken_status();
        }
        const int open = wait_all(requests_, deadline);
        if (open == -1) {
            requests_.clear();
            return Status::Ok();
        }
        if (open == -2) {
            mark_broken(std::string("MPI must complete the ") + round + " round, got an error");
            return broken_status();
        }
        if (open == -3) {
            const char* why = "";
            transport::interrupted(&why);
            mark_broken(std::string("a call on this rank was interrupted: ") + why);
            requests_.clear();
            return broken_status();
        }
        // A rank of this node that died is named through its pidfd; else the rank whose message
        // has not come (or that has not taken mine).
        if (std::string why = dead_node_peer(); !why.empty()) {
            mark_broken(why);
            return broken_status();
        }
        const int missing = open % size_;
        mark_broken("rank " + std::to_string(missing) + " of '" + name_ + "' must " + round +
                    " within " + transport::timeout_text() + ", got no " + round + " (call " +
                    std::to_string(call) + ")");
        requests_.clear();  // abandoned: the group is broken for good
        return broken_status();
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
                            "' must move its rows between nodes within " +
                            transport::timeout_text() + ", got a transfer still open");
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
    uint64_t next_call_ = 0;
    std::vector<std::byte> mine_;
    std::vector<std::byte> records_[2];
    std::vector<MPI_Request> requests_;
    std::vector<std::byte> send_buffer_, recv_buffer_;
};

Status check(int rc, const char* what) {
    if (rc == MPI_SUCCESS) return Status::Ok();
    return {Code::kRuntime,
            std::string(what) + " must succeed, got MPI error " + std::to_string(rc)};
}

// What every rank must agree on before any collective split: its node setting, and (under a
// rank table) the table rank it was given.
struct Settings {
    int32_t ranks_per_node = 0;
    int32_t table_rank = -1;  // -1: not a rank table's join
    int32_t table_size = -1;
    int32_t reserved = 0;
};

struct AgreementVerdict {
    int32_t ok = 0;
    int32_t ranks_per_node = 0;
    char message[248] = {};
};

// Rank 0 gathers every rank's settings point-to-point (naming a rank that never comes) and
// answers every rank with one verdict. The same status on every rank that arrives.
Status agree_on_settings(MPI_Comm comm, const Settings& mine, int* ranks_per_node) {
    int rank = 0, size = 0;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    const auto deadline = transport::call_deadline();
    AgreementVerdict verdict;
    if (rank == 0) {
        std::vector<Settings> all(static_cast<std::size_t>(size));
        all[0] = mine;
        std::vector<MPI_Request> requests(static_cast<std::size_t>(size), MPI_REQUEST_NULL);
        for (int r = 1; r < size; ++r)
            MPI_Irecv(&all[static_cast<std::size_t>(r)],
                      sizeof(Settings),
                      MPI_BYTE,
                      r,
                      kSettingsTag,
                      comm,
                      &requests[static_cast<std::size_t>(r)]);
        const int open = wait_all(requests, deadline);
        std::string why;
        if (open >= 0) {
            why = "rank " + std::to_string(open) +
                  " of the MPI communicator must call from_mpi within MOEDIST_TIMEOUT_MS = " +
                  std::to_string(util::timeout_ms()) + " ms, got no call";
        } else if (open == -2) {
            why = "MPI must carry every rank's settings, got an error";
        } else if (open == -3) {
            why = "from_mpi on rank 0 was interrupted";
        }
        for (int r = 0; r < size && why.empty(); ++r) {
            const Settings& s = all[static_cast<std::size_t>(r)];
            if (s.ranks_per_node != mine.ranks_per_node) {
                why = "MOEDIST_RANKS_PER_NODE must be the same on every rank, got " +
                      std::to_string(mine.ranks_per_node) + " on rank 0 and " +
                      std::to_string(s.ranks_per_node) + " on rank " + std::to_string(r) +
                      " (0: unset)";
            } else if (s.table_rank != -1 && (s.table_rank != r || s.table_size != size)) {
                why = "the rank table's ranks must be the MPI ranks (mpirun -np " +
                      std::to_string(s.table_size) +
                      ", each process its own rank), got table rank " +
                      std::to_string(s.table_rank) + " of " + std::to_string(s.table_size) +
                      " on MPI rank " + std::to_string(r) + " of " + std::to_string(size);
            }
        }
        verdict.ok = why.empty() ? 1 : 0;
        verdict.ranks_per_node = mine.ranks_per_node;
        std::memcpy(verdict.message, why.data(), std::min(why.size(), sizeof(verdict.message) - 1));
        std::vector<MPI_Request> sends(static_cast<std::size_t>(size), MPI_REQUEST_NULL);
        for (int r = 1; r < size; ++r) {
            if (open >= 0 && requests[static_cast<std::size_t>(r)] != MPI_REQUEST_NULL) continue;
            MPI_Isend(&verdict,
                      sizeof(verdict),
                      MPI_BYTE,
                      r,
                      kVerdictTag,
                      comm,
                      &sends[static_cast<std::size_t>(r)]);
        }
        (void)wait_all(sends, deadline + std::chrono::seconds(1));
    } else {
        std::vector<MPI_Request> requests(2, MPI_REQUEST_NULL);
        MPI_Isend(&mine, sizeof(Settings), MPI_BYTE, 0, kSettingsTag, comm, &requests[0]);
        MPI_Irecv(&verdict, sizeof(verdict), MPI_BYTE, 0, kVerdictTag, comm, &requests[1]);
        // A little past rank 0's deadline, so that its verdict (naming who is missing) arrives.
        if (wait_all(requests, deadline + std::chrono::seconds(2)) != -1) {
            return {Code::kRuntime,
                    "rank 0 of the MPI communicator must answer from_mpi within "
                    "MOEDIST_TIMEOUT_MS = " +
                        std::to_string(util::timeout_ms()) + " ms, got no answer"};
        }
    }
    if (!verdict.ok) return {Code::kRuntime, util::peer_text(verdict.message)};
    *ranks_per_node = verdict.ranks_per_node;
    return Status::Ok();
}

Status from_mpi_with(MPI_Comm comm, const Settings& settings, Communicator* out) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) return {Code::kRuntime, "MPI must be initialized before from_mpi, got not"};
    int per_node = 0;
    if (Status s = agree_on_settings(comm, settings, &per_node); !s.ok()) return s;
    MPI_Comm dup = MPI_COMM_NULL;
    if (Status s = check(MPI_Comm_dup(comm, &dup), "MPI_Comm_dup"); !s.ok()) return s;
    MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
    int rank = 0, size = 0;
    MPI_Comm_rank(dup, &rank);
    MPI_Comm_size(dup, &size);
    // Nodes: ranks sharing memory, or simulated nodes of n consecutive ranks.
    MPI_Comm node = MPI_COMM_NULL;
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
    uint64_t group_id = transport::new_group_id();  // rank 0's, on every rank
    MPI_Bcast(&group_id, 1, MPI_UINT64_T, 0, dup);
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
    auto endpoint = std::make_shared<MpiEndpoint>(
        dup, name, std::move(node_of), std::move(node_endpoint), group_id);
    std::vector<std::shared_ptr<transport::Transport>> endpoints(static_cast<std::size_t>(size));
    endpoints[static_cast<std::size_t>(rank)] = endpoint;
    transport::register_group(name, endpoint->ref().id, size, endpoints);
    *out = transport::Access::make(std::move(endpoint));
    return Status::Ok();
}

}  // namespace

Status from_mpi(MPI_Comm comm, Communicator* out) {
    Settings settings;
    settings.ranks_per_node = util::ranks_per_node();
    return from_mpi_with(comm, settings, out);
}

namespace {

// HcclCommInitClusterInfo under mpirun: the table's rank r is MPI rank r of MPI_COMM_WORLD
// (MPI initialized here when the program has not; finalized at exit). A rank given the wrong
// table rank fails with every other rank (the settings agreement), never alone.
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
    Settings settings;
    settings.ranks_per_node = util::ranks_per_node();
    settings.table_rank = rank;
    settings.table_size = size;
    return from_mpi_with(MPI_COMM_WORLD, settings, out);
}

const bool registered = [] {
    runtime::set_mpi_cluster_join(&join_cluster_over_mpi);
    return true;
}();

}  // namespace

}  // namespace moedist
