// The processes driver of a harness job: W·T forked rank processes, each in its own EP (and
// TP) process group formed through a socket rendezvous, its tensors in the shared-memory arena,
// so the ranks read each other's tensors in place, as the product does.
//
//   driver ──(MAP_SHARED anonymous block, made before fork)── rank processes
//     Control: task, epoch (futex: a new task), done (futex: ranks finished it), the ranks'
//              barrier for the phases of a step, and per rank: its stamps, status, byte counts
//              and the RegionRefs of its outputs (the driver maps them to check them)
//
// A rank that dies is noticed by the driver (waitpid) and by its peers (pidfd): the job fails
// with every later task skipped; nothing hangs past MOEDIST_TIMEOUT_MS.
//
// Backend::kHosts: the driver of one host forks only that host's ranks, which join the job's
// EP group through a rank table naming every host (written to a temporary file; the ucx engine
// joins them); statuses, outputs and stamps are this host's ranks' (the others' outputs are
// empty, so the check skips them).
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>
#include <thread>
#include <vector>

#include "core/remote.hpp"
#include "harness/driver.hpp"
#include "transport/access.hpp"
#include "transport/futex.hpp"
#include "transport/peer_memory.hpp"
#include "transport/process_group.hpp"
#include "transport/shm_arena.hpp"
#include "transport/socket_rendezvous.hpp"
#include "util/env.hpp"

namespace moedist::harness {
namespace {

using transport::Clock;
using transport::RegionRef;

constexpr int kMaxRanks = 256;

// The outputs of one rank as regions of its arena.
struct OutputRefs {
    RegionRef expand_x, dynamic_scales, dynamic_bytes, expand_idx, expert_token_nums;
    RegionRef ep_recv_counts, tp_recv_counts, expand_scales, x_out;
    int64_t num_tokens = 0;
    uint64_t scale_entries = 0, ep_len = 0, tp_len = 0, expand_scales_len = 0;
};

struct alignas(64) RankSlot {
    Stamps stamps;
    int32_t code = 0;
    char message[512] = {};
    int64_t allocated = 0;
    OutputRefs outputs;
    int32_t pid = 0;
    int64_t traffic[5] = {};  // the last task's cross-node traffic (core::last_cross_node_traffic)
};

// A barrier of processes on futexes in shared memory, with a deadline.
struct SharedBarrier {
    std::atomic<uint32_t> count{0};
    std::atomic<uint32_t> generation{0};
    int32_t parties = 0;
    bool wait(Clock::time_point deadline) {
        const uint32_t gen = generation.load(std::memory_order_acquire);
        if (count.fetch_add(1, std::memory_order_acq_rel) + 1 == static_cast<uint32_t>(parties)) {
            count.store(0, std::memory_order_relaxed);
            generation.fetch_add(1, std::memory_order_acq_rel);
            transport::futex_wake_all(&generation, true);
            return true;
        }
        for (int i = 0; i < 64; ++i) {
            if (generation.load(std::memory_order_acquire) != gen) return true;
            std::this_thread::yield();
        }
        while (generation.load(std::memory_order_acquire) == gen) {
            const auto now = Clock::now();
            if (now >= deadline) return false;
            transport::futex_wait(
                &generation,
                gen,
                std::min<std::chrono::nanoseconds>(deadline - now, std::chrono::milliseconds(10)),
                true);
        }
        return true;
    }
};

struct Control {
    std::atomic<uint32_t> task{0};
    std::atomic<uint32_t> epoch{0};
    std::atomic<uint32_t> done{0};
    SharedBarrier ranks_sync;
    RankSlot ranks[kMaxRanks];
};

void set_status(RankSlot& slot, const Status& s) {
    slot.code = s.raw_code();
    const std::size_t n = std::min(s.message().size(), sizeof(slot.message) - 1);
    std::memcpy(slot.message, s.message().data(), n);
    slot.message[n] = '\0';
}

void* arena_allocate(std::size_t bytes) { return transport::arena_allocate(bytes); }
void arena_release(void* p) { transport::arena_free(p); }

RegionRef region_of(const void* p, std::size_t bytes) {
    RegionRef ref;
    if (p != nullptr && bytes > 0) transport::arena_region(p, bytes, &ref);
    return ref;
}

std::atomic<uint64_t> job_counter{0};

// A rank process's life: join groups, build tensors, run tasks until told to stop.
[[noreturn]] void rank_process(Control* control,
                               const JobSpec& spec,
                               const Layout& lay,
                               int g,
                               const std::string& key,
                               const std::string& table) {
    RankSlot& slot = control->ranks[g];
    const int ep = lay.ep_of(g), tp = lay.tp_of(g);
    const auto deadline = transport::call_deadline();
    auto join = [&](const std::string& group, int rank, int size, Communicator* out) -> Status {
        if (!table.empty())  // kHosts: the group's table in the job's table directory
            return Communicator::from_rank_table(table + "/" + group + ".json", rank, out);
        std::unique_ptr<transport::SocketRendezvous> rendezvous;
        if (Status s = transport::SocketRendezvous::open(
                key + "-" + group, rank, size, /*fingerprint=*/0, deadline, &rendezvous);
            !s.ok())
            return s;
        return Communicator::join_processes(
            rank,
            size,
            group + "_" + key,
            [&](const std::vector<std::byte>& mine, std::vector<std::byte>* all) {
                return rendezvous->all_gather(mine, all);
            },
            out);
    };
    Communicator ep_comm;
    std::optional<Communicator> tp_comm;
    Status joined = join("ep" + std::to_string(tp), ep, lay.W, &ep_comm);
    if (joined.ok() && lay.T == 2) {
        Communicator c;
        joined = join("tp" + std::to_string(ep), tp, 2, &c);
        tp_comm = c;
    }
    std::unique_ptr<RankRunner> runner;
    if (joined.ok()) {
        runner = std::make_unique<RankRunner>(spec,
                                              lay,
                                              g,
                                              rank_input(spec, lay, g),
                                              ep_comm,
                                              tp_comm,
                                              Allocator{&arena_allocate, &arena_release},
                                              spec.checked);
        joined = runner->status();
    }
    set_status(slot, joined);
    uint32_t seen = 0;
    for (;;) {
        control->done.fetch_add(1, std::memory_order_acq_rel);
        transport::futex_wake_all(&control->done, true);
        while (control->epoch.load(std::memory_order_acquire) == seen) {
            transport::futex_wait(&control->epoch, seen, std::chrono::milliseconds(50), true);
            if (getppid() == 1) _exit(3);  // the driver is gone
        }
        seen = control->epoch.load(std::memory_order_acquire);
        const auto task = static_cast<Task>(control->task.load(std::memory_order_acquire));
        if (task == Task::kStop) _exit(0);
        const auto phase_deadline = [] { return transport::call_deadline(); };
        if (runner) {
            // Across hosts each host's driver starts its ranks on its own: a barrier of the whole
            // EP group after this host's (as mpirun's MPI_Barrier) makes every phase start
            // together on every host, so no phase is timed with another host's lag in it.
            const bool across_hosts = spec.backend == Backend::kHosts;
            const auto sync = [&] {
                if (!control->ranks_sync.wait(phase_deadline()))
                    set_status(slot,
                               {Code::kRuntime,
                                "a peer rank process must reach the step's "
                                "phase barrier, got none in time"});
                if (across_hosts) runner->group_barrier();
            };
            if (across_hosts && task == Task::kStep) sync();  // the dispatch starts together too
            run_task(task, *runner, &slot.stamps, sync);
            if (slot.code == 0) set_status(slot, runner->status());
            const RankOutputs o = runner->outputs();
            OutputRefs& r = slot.outputs;
            r.num_tokens = o.num_tokens;
            r.expand_x = region_of(o.expand_x, o.expand_x_bytes);
            r.dynamic_scales = region_of(o.dynamic_scales, o.scale_entries * 4);
            r.dynamic_bytes = region_of(o.dynamic_bytes, o.scale_entries);
            r.expand_idx =
                region_of(o.expand_idx,
                          static_cast<std::size_t>(std::max<int64_t>(o.num_tokens * lay.K, 1)) * 4);
            r.expert_token_nums =
                region_of(o.expert_token_nums, static_cast<std::size_t>(lay.local_experts(ep)) * 8);
            r.ep_recv_counts = region_of(o.ep_recv_counts, o.ep_recv_counts_len * 4);
            r.tp_recv_counts = region_of(o.tp_recv_counts, o.tp_recv_counts_len * 4);
            r.expand_scales =
                region_of(o.expand_scales, std::max<std::size_t>(o.expand_scales_len, 1) * 4);
            r.x_out = region_of(
                o.x_out, static_cast<std::size_t>(std::max<int64_t>(o.num_tokens * lay.H, 1)) * 2);
            r.scale_entries = o.scale_entries;
            r.ep_len = o.ep_recv_counts_len;
            r.tp_len = o.tp_recv_counts_len;
            r.expand_scales_len = o.expand_scales_len;
            slot.allocated = runner->allocated_bytes();
            const core::CrossNodeTraffic t = core::last_cross_node_traffic();
            slot.traffic[0] = t.dispatch_rows;
            slot.traffic[1] = t.dispatch_bytes;
            slot.traffic[2] = t.dispatch_flat_rows;
            slot.traffic[3] = t.combine_rows;
            slot.traffic[4] = t.combine_bytes;
        } else if (task == Task::kStep) {
            control->ranks_sync.wait(phase_deadline());
            control->ranks_sync.wait(phase_deadline());
        }
    }
}

class ProcessDriver final : public JobDriver {
public:
    ProcessDriver(const JobSpec& spec, const Layout& lay) : spec_(spec), lay_(lay) {
        const int ranks = lay.ranks();
        if (ranks > kMaxRanks) {
            failure_ = {Code::kInnerTiling, "the processes backend runs at most 256 ranks"};
            return;
        }
        last_ = ranks;
        if (spec.backend == Backend::kHosts) {
            if (Status s = write_hosts_table(); !s.ok()) {
                failure_ = s;
                return;
            }
        }
        void* block = mmap(
            nullptr, sizeof(Control), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (block == MAP_FAILED) throw std::bad_alloc();
        control_ = new (block) Control();
        control_->ranks_sync.parties = last_ - first_;
        const std::string key =
            "harness-" + std::to_string(getpid()) + "-" + std::to_string(job_counter.fetch_add(1));
        std::fflush(nullptr);
        for (int g = first_; g < last_; ++g) {
            const pid_t pid = fork();
            if (pid == 0) rank_process(control_, spec_, lay_, g, key, table_);
            pids_.push_back(pid);
            if (pid < 0)
                failure_ = {Code::kRuntime,
                            "fork must succeed, got " + std::string(std::strerror(errno))};
        }
        wait_done();  // every rank has joined and built its tensors
        stamps_.resize(static_cast<std::size_t>(last_ - first_));
    }

    ~ProcessDriver() override {
        if (control_ == nullptr) return;
        control_->task.store(static_cast<uint32_t>(Task::kStop), std::memory_order_release);
        bump();
        const auto deadline = Clock::now() + std::chrono::seconds(10);
        for (pid_t pid : pids_) {
            if (pid <= 0) continue;
            int status = 0;
            while (waitpid(pid, &status, WNOHANG) == 0) {
                if (Clock::now() > deadline) {
                    kill(pid, SIGKILL);
                    waitpid(pid, &status, 0);
                    break;
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
        }
        munmap(control_, sizeof(Control));
        if (!table_.empty()) std::filesystem::remove_all(table_);
    }

    void run(Task task) override {
        if (!failure_.ok()) return;
        control_->task.store(static_cast<uint32_t>(task), std::memory_order_release);
        bump();
        wait_done();
        for (int g = first_; g < last_; ++g)
            stamps_[static_cast<std::size_t>(g - first_)] = control_->ranks[g].stamps;
    }
    const std::vector<Stamps>& stamps() const override { return stamps_; }
    std::vector<Status> statuses() const override {
        std::vector<Status> all;
        for (int g = 0; g < lay_.ranks(); ++g) {
            if (!failure_.ok()) {
                all.push_back(failure_);
                continue;
            }
            const RankSlot& s = control_->ranks[g];
            if (g < first_ || g >= last_) {  // another host's
                all.push_back(Status::Ok());
                continue;
            }
            all.push_back(s.code == 0 ? Status::Ok()
                                      : Status(static_cast<Code>(s.code), s.message));
        }
        return all;
    }
    std::vector<RankOutputs> outputs() const override {
        std::vector<RankOutputs> all;
        for (int g = 0; g < lay_.ranks(); ++g) {
            if (g < first_ || g >= last_) {  // another host's: not checked here
                all.emplace_back();
                continue;
            }
            const OutputRefs& r = control_->ranks[g].outputs;
            auto at = [this](const RegionRef& ref) { return memory_.map(ref); };
            RankOutputs o;
            o.num_tokens = r.num_tokens;
            o.expand_x = reinterpret_cast<const uint8_t*>(at(r.expand_x));
            o.expand_x_bytes = r.expand_x.bytes;
            o.dynamic_scales = reinterpret_cast<const float*>(at(r.dynamic_scales));
            o.dynamic_bytes = reinterpret_cast<const uint8_t*>(at(r.dynamic_bytes));
            o.scale_entries = r.scale_entries;
            o.expand_idx = reinterpret_cast<const int32_t*>(at(r.expand_idx));
            o.expert_token_nums = reinterpret_cast<const int64_t*>(at(r.expert_token_nums));
            o.ep_recv_counts = reinterpret_cast<const int32_t*>(at(r.ep_recv_counts));
            o.ep_recv_counts_len = r.ep_len;
            o.tp_recv_counts = reinterpret_cast<const int32_t*>(at(r.tp_recv_counts));
            o.tp_recv_counts_len = r.tp_len;
            o.expand_scales = reinterpret_cast<const float*>(at(r.expand_scales));
            o.expand_scales_len = r.expand_scales_len;
            o.x_out = reinterpret_cast<const uint16_t*>(at(r.x_out));
            all.push_back(o);
        }
        return all;
    }
    std::array<int64_t, 5> cross_host_traffic() const override {
        std::array<int64_t, 5> sums{};
        if (control_ == nullptr) return sums;
        for (int g = first_; g < last_; ++g)
            for (std::size_t i = 0; i < sums.size(); ++i) sums[i] += control_->ranks[g].traffic[i];
        return sums;
    }
    int64_t allocated_bytes() const override {
        int64_t total = 0;
        for (int g = first_; g < last_; ++g) total += control_->ranks[g].allocated;
        return total;
    }

private:
    mutable transport::PeerMemory memory_;  // the ranks' outputs, mapped to be checked

    void bump() {
        control_->done.store(0, std::memory_order_release);
        control_->epoch.fetch_add(1, std::memory_order_acq_rel);
        transport::futex_wake_all(&control_->epoch, true);
    }

    // Backend::kHosts: this host's ranks and the rank table naming every host (EP groups
    // across hosts need TP = 1).
    // kHosts: one rank table per group, the same bytes on every host (a table's fingerprint
    // names its job): "ep<t>" for the EP group of TP rank t (EP rank e is world rank e·T + t),
    // and "tp<e>" for each TP pair of this host. Host h runs world ranks [h·per, (h + 1)·per).
    Status write_hosts_table() {
        const int hosts = static_cast<int>(spec_.hosts.size()), ranks = lay_.ranks();
        if (hosts < 1 || ranks % hosts != 0 || spec_.host_index < 0 || spec_.host_index >= hosts)
            return {Code::kInnerTiling,
                    "a job across hosts must split its " + std::to_string(ranks) +
                        " ranks evenly over its hosts, got " + std::to_string(hosts) + " hosts"};
        const int per = ranks / hosts;
        first_ = spec_.host_index * per;
        last_ = first_ + per;
        char path[] = "/tmp/moedist-hosts-XXXXXX";
        if (mkdtemp(path) == nullptr)
            return {Code::kRuntime, "a temporary rank table directory must be made in /tmp"};
        table_ = path;
        // Members of a group: world ranks by group rank.
        auto write = [&](const std::string& group, const std::vector<int>& world) {
            std::string servers;
            int count = 0;
            for (int h = 0; h < hosts; ++h) {
                std::string devices;
                for (std::size_t r = 0; r < world.size(); ++r) {
                    if (world[r] / per != h) continue;
                    devices += std::string(devices.empty() ? "" : ",") + "{\"device_id\": \"" +
                               std::to_string(world[r] % per) + "\", \"rank_id\": \"" +
                               std::to_string(r) + "\"}";
                }
                if (devices.empty()) continue;
                servers += std::string(count++ == 0 ? "" : ",") + "{\"server_id\": \"" +
                           spec_.hosts[static_cast<std::size_t>(h)] + "\", \"device\": [" +
                           devices + "]}";
            }
            std::ofstream out(table_ + "/" + group + ".json");
            out << "{\"version\": \"1.0\", \"server_count\": \"" << count
                << "\", \"status\": \"completed\", \"server_list\": [" << servers << "]}\n";
            return static_cast<bool>(out);
        };
        bool written = true;
        for (int t = 0; t < lay_.T; ++t) {
            std::vector<int> world;
            for (int e = 0; e < lay_.W; ++e) world.push_back(e * lay_.T + t);
            written = written && write("ep" + std::to_string(t), world);
        }
        for (int e = 0; lay_.T == 2 && e < lay_.W; ++e) {
            if ((e * 2) / per == spec_.host_index || (e * 2 + 1) / per == spec_.host_index)
                written = written && write("tp" + std::to_string(e), {e * 2, e * 2 + 1});
        }
        return written ? Status::Ok()
                       : Status(Code::kRuntime, "the temporary rank tables must be written");
    }

    // Until every rank reports the task done; a rank process that dies fails the job.
    void wait_done() {
        const auto ranks = static_cast<uint32_t>(last_ - first_);
        const auto deadline =
            Clock::now() + std::chrono::milliseconds(4 * util::timeout_ms() + 5000);
        for (;;) {
            const uint32_t done = control_->done.load(std::memory_order_acquire);
            if (done >= ranks) return;
            for (std::size_t i = 0; i < pids_.size(); ++i) {
                int status = 0;
                const auto g = static_cast<std::size_t>(first_) + i;
                if (pids_[i] > 0 && waitpid(pids_[i], &status, WNOHANG) == pids_[i]) {
                    failure_ = {Code::kRuntime,
                                "rank process " + std::to_string(g) + " (pid " +
                                    std::to_string(pids_[i]) +
                                    ") must live until the job ends, got it " +
                                    (WIFSIGNALED(status)
                                         ? "killed by signal " + std::to_string(WTERMSIG(status))
                                         : "exited with " + std::to_string(WEXITSTATUS(status)))};
                    pids_[i] = -1;
                    return;
                }
            }
            if (Clock::now() > deadline) {
                failure_ = {Code::kRuntime,
                            "every rank process must finish its task within the timeouts, got " +
                                std::to_string(done) + " of " + std::to_string(ranks)};
                return;
            }
            transport::futex_wait(&control_->done, done, std::chrono::milliseconds(20), true);
        }
    }

    JobSpec spec_;
    Layout lay_;
    Control* control_ = nullptr;
    std::vector<pid_t> pids_;
    std::vector<Stamps> stamps_;
    Status failure_;
    int first_ = 0, last_ = 0;  // this host's ranks [first_, last_)
    std::string table_;         // kHosts: the temporary directory of the job's rank tables
};

}  // namespace

std::unique_ptr<JobDriver> make_process_driver(const JobSpec& spec, const Layout& lay) {
    return std::make_unique<ProcessDriver>(spec, lay);
}

}  // namespace moedist::harness
