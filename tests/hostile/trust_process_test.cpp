// Trust between processes, inside a group: forged hellos and control blocks at a join, forged
// records in a call, a recycled pid, a peer whose memory cannot be mapped, peers restarted 50
// times, freed memory, two threads on one communicator, a handle of another group. Every case
// ends in a clean failure on every rank (a code and a message) or a correct result checked row by
// row; never a crash, a hang, or rows of another job.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/test_hooks.hpp"
#include "moedist/moedist.hpp"
#include "support.hpp"
#include "transport/agent.hpp"
#include "transport/bootstrap.hpp"
#include "transport/process_group.hpp"
#include "transport/shm_arena.hpp"
#include "transport/slot_group.hpp"
#include "transport/socket_rendezvous.hpp"
#include "trust_support.hpp"
#include "util/cpu.hpp"

namespace {

using moedist::Code;
using moedist::Communicator;
using moedist::Status;
using moedist::transport::Hello;
using Clock = std::chrono::steady_clock;
namespace tp = moedist::transport;

constexpr double kWait = 20;

// Rank `rank` of a 2-rank process group met through a socket rendezvous on `key`.
Status join_pair(const std::string& key, int rank, Communicator* out) {
    std::unique_ptr<tp::SocketRendezvous> rendezvous;
    if (Status s = tp::SocketRendezvous::open(key, rank, 2, 0, tp::call_deadline(), &rendezvous);
        !s.ok())
        return s;
    return Communicator::join_processes(
        rank,
        2,
        "g_" + key,
        [&](const std::vector<std::byte>& mine, std::vector<std::byte>* all) {
            return rendezvous->all_gather(mine, all);
        },
        out);
}

std::string unique_key(const char* what) {
    static int counter = 0;
    return std::string(what) + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
}

// A join as rank `rank` of 2 whose all-gather returns the other rank's hello as `forge` makes it
// (round 1 and round 2 alike; in round 2 the forged rank confirms).
Status join_forged(int rank, const std::function<void(Hello* other, bool first_round)>& forge) {
    int round = 0;
    tp::AllGather gather = [&](std::span<const std::byte> mine, std::vector<std::byte>* all) {
        all->assign(2 * sizeof(Hello), std::byte{0});
        std::memcpy(
            all->data() + static_cast<std::size_t>(rank) * sizeof(Hello), mine.data(), mine.size());
        Hello other;
        std::memcpy(&other, mine.data(), sizeof(other));  // start from a well-formed copy
        other.rank = 1 - rank;
        other.ok = 1;
        std::memset(other.message, 0, sizeof(other.message));
        other.group_id = 0;
        other.control_bytes = 0;
        forge(&other, round++ == 0);
        std::memcpy(all->data() + static_cast<std::size_t>(1 - rank) * sizeof(Hello),
                    &other,
                    sizeof(other));
        return Status::Ok();
    };
    std::shared_ptr<tp::Transport> out;
    return tp::join_process_group(rank, 2, "forged", gather, &out, false);
}

bool printable(const std::string& text) {
    for (char c : text)
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7F)
            return false;
    return true;
}

TEST(TrustJoin, ForgedHellosFailCleanlyWithBoundedPrintableMessages) {
    std::mt19937_64 rng(3);
    struct Case {
        const char* name;
        std::function<void(Hello*, bool)> forge;
        const char* expect;
    };
    const std::vector<Case> cases = {
        {"random bytes",
         [&](Hello* h, bool) {
             auto* b = reinterpret_cast<unsigned char*>(h);
             for (std::size_t i = 0; i < sizeof(Hello); ++i)
                 b[i] = static_cast<unsigned char>(rng());
         },
         "must be a moedist hello"},
        {"another size", [](Hello* h, bool) { h->size = 3; }, "the rank table changed"},
        {"a wrong control block size",
         [](Hello* h, bool) {
             h->group_id = 77;
             h->control_bytes = 4096;
         },
         "must announce a control block"},
        {"a failure without a terminator",
         [](Hello* h, bool) {
             h->ok = 0;
             std::memset(h->message, '\n', sizeof(h->message));
             h->message[3] = '\x1b';
         },
         "must form"},
        {"rank 0 in a process that is not there",
         [](Hello* h, bool first) {
             h->process.pid = 1;  // init: alive, but no moedist agent
             h->process.nonce = 0x1234567;
             if (first) {
                 h->group_id = 99;
                 h->control_bytes = tp::control_bytes(2);
             }
         },
         "must get rank 0's control block"},
    };
    for (const Case& c : cases) {
        const Status s = join_forged(1, c.forge);
        EXPECT_FALSE(s.ok()) << c.name;
        EXPECT_EQ(s.code(), Code::kRuntime) << c.name;
        EXPECT_NE(s.message().find(c.expect), std::string::npos) << c.name << ": " << s.message();
        EXPECT_TRUE(printable(s.message())) << c.name << ": " << s.message();
        EXPECT_LT(s.message().size(), 800u) << c.name;
    }
}

// A process of this user that offers, as rank 0's control block, something else.
TEST(TrustJoin, AForgedControlBlockFailsCleanly) {
    const std::size_t bytes = tp::control_bytes(2);
    struct Variant {
        const char* name;
        uint64_t id;
        const char* expect;
    };
    const std::vector<Variant> variants = {
        {"unsealed", 501, "not sealed"},
        {"sealed at another size", 502, "not the"},
        {"sealed, not a control block", 503, "must describe this group"}};
    int pipe_fds[2];
    ASSERT_EQ(pipe(pipe_fds), 0);
    const pid_t owner = trust::fork_child([&] {
        // 501: a plain memfd of the right size; 502: sealed, half the size; 503: sealed, garbage.
        const int plain = memfd_create("forged", MFD_CLOEXEC);
        if (ftruncate(plain, static_cast<off_t>(bytes)) != 0) return 3;
        tp::agent_offer(tp::AgentObject::kControl, 501, plain, bytes);
        moedist::util::UniqueFd small = tp::sealed_memory("forged", bytes / 2);
        tp::agent_offer(tp::AgentObject::kControl, 502, small.get(), bytes);
        moedist::util::UniqueFd junk = tp::sealed_memory("forged", bytes);
        void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, junk.get(), 0);
        std::memset(p, 0x5A, bytes);
        tp::agent_offer(tp::AgentObject::kControl, 503, junk.get(), bytes);
        const tp::ProcessId self = tp::self_process();
        if (write(pipe_fds[1], &self, sizeof(self)) != static_cast<ssize_t>(sizeof(self))) return 4;
        pause();
        return 0;
    });
    tp::ProcessId owner_id;
    ASSERT_EQ(read(pipe_fds[0], &owner_id, sizeof(owner_id)),
              static_cast<ssize_t>(sizeof(owner_id)));
    for (const Variant& v : variants) {
        const Status s = join_forged(1, [&](Hello* h, bool first) {
            h->process = owner_id;
            if (first) {
                h->group_id = v.id;
                h->control_bytes = bytes;
            }
        });
        EXPECT_FALSE(s.ok()) << v.name;
        EXPECT_NE(s.message().find(v.expect), std::string::npos) << v.name << ": " << s.message();
    }
    kill(owner, SIGKILL);
    trust::wait_child(owner, 5);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
}

// Rank 1 publishes records with random bytes in random places; rank 0 fails cleanly or (when the
// bytes changed nothing it reads) succeeds with its rows checked. Never a signal.
TEST(TrustRecords, ForgedRecordsOfAPeerProcessNeverCrashIt) {
    constexpr int kTrials = trust::trials(30, 12);
    for (int trial = 0; trial < kTrials; ++trial) {
        const std::string key = unique_key("records");
        trust::Board board(2);
        std::vector<pid_t> ranks;
        for (int r = 0; r < 2; ++r) {
            ranks.push_back(trust::fork_child([&, r] {
                if (r == 1) {
                    static unsigned seed;
                    seed = static_cast<unsigned>(trial) * 7919u + 1u;
                    moedist::core::test_hooks::set_record(
                        [](int, void* record, unsigned long bytes) {
                            std::mt19937 rng(seed++);
                            auto* b = static_cast<unsigned char*>(record);
                            for (int i = 0; i < 12; ++i)
                                b[rng() % bytes] = static_cast<unsigned char>(rng());
                        });
                }
                Communicator comm;
                Status s = join_pair(key, r, &comm);
                if (s.ok()) s = trust::run_rank({}, comm, 2);
                board.put(r, s);
                return s.ok() ? 0 : 1;
            }));
        }
        const int c0 = trust::wait_child(ranks[0], kWait);
        const int c1 = trust::wait_child(ranks[1], kWait);
        EXPECT_TRUE(c0 == 0 || c0 == 1) << "trial " << trial << ": rank 0 ended with " << c0;
        EXPECT_TRUE(c1 == 0 || c1 == 1) << "trial " << trial << ": rank 1 ended with " << c1;
        EXPECT_NE(board.code(0), 900001) << board.message(0);
        if (c0 == 1) {
            EXPECT_TRUE(printable(board.message(0))) << board.message(0);
        }
    }
}

// A new peer that gets a dead peer's pid is a new process: its own memory, alive.
TEST(TrustPids, ARecycledPidIsANewPeer) {
    MOEDIST_SKIP_FORK_AFTER_THREADS();
    const int ns_last_pid = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
    if (ns_last_pid < 0) GTEST_SKIP() << "needs root to choose the next pid (ns_last_pid)";
    pid_t first = -1;
    for (int generation = 0; generation < 2; ++generation) {
        const std::string key = unique_key("pids");
        const uint64_t job = 60 + static_cast<uint64_t>(generation);
        if (generation == 1) {
            const std::string text = std::to_string(first - 1);
            ASSERT_EQ(pwrite(ns_last_pid, text.data(), text.size(), 0),
                      static_cast<ssize_t>(text.size()));
        }
        trust::Board board(1);
        const pid_t peer = trust::fork_child([&] {
            Communicator comm;
            Status s = join_pair(key, 1, &comm);
            trust::JobSpec spec;
            spec.job = job;
            if (s.ok()) s = trust::run_rank(spec, comm, 3);
            board.put(0, s);
            return s.ok() ? 0 : 1;
        });
        if (generation == 0) first = peer;
        if (generation == 1 && peer != first) {
            trust::wait_child(peer, 1);
            close(ns_last_pid);
            GTEST_SKIP() << "another process took pid " << first << " first";
        }
        Status s;
        {
            Communicator comm;
            s = join_pair(key, 0, &comm);
            trust::JobSpec spec;
            spec.job = job;
            if (s.ok()) s = trust::run_rank(spec, comm, 3);
        }
        EXPECT_TRUE(s.ok()) << "generation " << generation << ": " << s.message();
        EXPECT_EQ(trust::wait_child(peer, kWait), 0) << board.message(0);
    }
    close(ns_last_pid);
}

#ifndef MOEDIST_SANITIZED
// Rank 1 cannot map rank 0's new segment (RLIMIT_AS): both operations fail with 361001 on both
// ranks, naming the memory; no rank crashes.
TEST(TrustMemory, APeerSegmentThatCannotBeMappedFailsDispatchAndCombineCleanly) {
    for (const bool in_combine : {false, true}) {
        const std::string key = unique_key("rlimit");
        trust::Board board(2);
        std::vector<pid_t> ranks;
        for (int r = 0; r < 2; ++r) {
            ranks.push_back(trust::fork_child([&, r] {
                Communicator comm;
                Status s = join_pair(key, r, &comm);
                trust::JobSpec spec;
                if (r == 1 && s.ok()) {
                    tp::arena_free(tp::arena_allocate(64));  // its own segment, mapped now
                    std::ifstream status("/proc/self/status");
                    long vm_kib = 0;
                    for (std::string line; std::getline(status, line);)
                        if (line.rfind("VmSize:", 0) == 0) vm_kib = std::stol(line.substr(7));
                    // Room for rank 0's usual 64 MiB segment, not for its 512 MiB one.
                    const rlim_t limit = static_cast<rlim_t>(vm_kib) * 1024 + (200u << 20);
                    rlimit rl{limit, limit};
                    setrlimit(RLIMIT_AS, &rl);
                }
                if (r == 0)
                    (in_combine ? spec.expert_out_segment_bytes : spec.x_segment_bytes) = 512u
                                                                                          << 20;
                if (s.ok()) s = trust::run_rank(spec, comm);
                board.put(r, s);
                return s.ok() ? 0 : 1;
            }));
        }
        for (int r = 0; r < 2; ++r) {
            EXPECT_EQ(trust::wait_child(ranks[static_cast<std::size_t>(r)], kWait), 1)
                << (in_combine ? "combine" : "dispatch") << " rank " << r << ": "
                << board.message(r);
            EXPECT_EQ(board.code(r), 361001) << board.message(r);
        }
        EXPECT_NE(board.message(1).find("cannot map"), std::string::npos) << board.message(1);
    }
}
#endif

// A long-lived rank whose peer is restarted 50 times keeps no peer's memory: its mappings and the
// host's shared memory stay flat (each peer touched 16 MiB of its arena).
TEST(TrustMemory, FiftyPeerRestartsHoldMemoryFlat) {
    MOEDIST_SKIP_FORK_AFTER_THREADS();
    const int segments_before = trust::mapped_arena_segments();
    int64_t shmem_before = 0;
    for (int generation = 0; generation < 50; ++generation) {
        const std::string key = unique_key("soak");
        trust::Board board(1);
        const pid_t peer = trust::fork_child([&] {
            void* big = tp::arena_allocate(16u << 20);  // in the segment rank 0 maps
            std::memset(big, 0x11, 16u << 20);
            Communicator comm;
            Status s = join_pair(key, 1, &comm);
            if (s.ok()) s = trust::run_rank({}, comm);
            board.put(0, s);
            return s.ok() ? 0 : 1;
        });
        {
            Communicator comm;
            Status s = join_pair(key, 0, &comm);
            if (s.ok()) s = trust::run_rank({}, comm);
            ASSERT_TRUE(s.ok()) << "generation " << generation << ": " << s.message();
        }
        ASSERT_EQ(trust::wait_child(peer, kWait), 0) << board.message(0);
        if (generation == 1) shmem_before = trust::host_shmem_kib();
    }
    EXPECT_LE(trust::mapped_arena_segments(), segments_before + 1)
        << "the mappings of peers that left must go with their groups";
    const int64_t grown_kib = trust::host_shmem_kib() - shmem_before;
    EXPECT_LT(grown_kib, 64 * 1024) << "48 restarts of a peer with 16 MiB each must not stay held";
}

TEST(TrustMemory, FreedArenaMemoryGoesBackToTheSystem) {
    const int64_t before = trust::self_rss_shmem_kib();
    constexpr std::size_t kBytes = 256u << 20;
    void* block = tp::arena_allocate(kBytes);
    ASSERT_NE(block, nullptr);
    std::memset(block, 0x42, kBytes);
    EXPECT_GT(trust::self_rss_shmem_kib(), before + 200 * 1024);
    tp::arena_free(block);
    EXPECT_LT(trust::self_rss_shmem_kib(), before + 16 * 1024);
}

// Two threads on one communicator: the second call fails at once, the first goes on.
TEST(TrustCalls, ASecondCallOnOneCommunicatorFromAnotherThreadFailsAtOnce) {
    for (int trial = 0; trial < 10; ++trial) {
        auto comms = Communicator::create_local_group(2);
        Status first, second, peer;
        Clock::duration second_took{};
        std::thread a([&] { first = trust::run_rank({}, comms[0]); });
        std::thread b([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            const auto start = Clock::now();
            second = trust::run_rank({}, comms[0]);
            second_took = Clock::now() - start;
        });
        std::thread c([&] {
            std::this_thread::sleep_for(std::chrono::milliseconds(400));
            peer = trust::run_rank({}, comms[1]);
        });
        a.join();
        b.join();
        c.join();
        EXPECT_TRUE(first.ok()) << first.message();
        EXPECT_TRUE(peer.ok()) << peer.message();
        ASSERT_FALSE(second.ok());
        EXPECT_EQ(second.code(), Code::kRuntime);
        EXPECT_NE(second.message().find("one call at a time"), std::string::npos)
            << second.message();
        EXPECT_LT(second_took, std::chrono::milliseconds(200));
    }
}

TEST(TrustCalls, CombineRefusesAHandleOfAnotherGroup) {
    using moedist::DType;
    using moedist::TensorView;
    auto g1 = Communicator::create_local_group(1);
    auto g2 = Communicator::create_local_group(1);
    moedist::MoeConfig config;
    config.ep_world_size = 1;
    config.moe_expert_num = 2;
    std::vector<uint16_t> x(2 * 8, 0x3F80), expand_x(2 * 8 * 2), out(2 * 8);
    std::vector<int32_t> ids = {0, 1}, idx(2), recv(2);
    std::vector<int64_t> nums(2);
    std::vector<float> w = {1.0f, 1.0f};
    moedist::DispatchInputs in;
    in.x = TensorView::contiguous(x.data(), DType::kBFloat16, {2, 8});
    in.expert_ids = TensorView::contiguous(ids.data(), DType::kInt32, {2, 1});
    moedist::DispatchOutputs o;
    o.expand_x = TensorView::contiguous(expand_x.data(), DType::kBFloat16, {4, 8});
    o.expand_idx = TensorView::contiguous(idx.data(), DType::kInt32, {2});
    o.expert_token_nums = TensorView::contiguous(nums.data(), DType::kInt64, {2});
    o.ep_recv_counts = TensorView::contiguous(recv.data(), DType::kInt32, {2});
    moedist::MoeDistributor first(g1[0], std::nullopt, config);
    moedist::MoeDistributor other(g2[0], std::nullopt, config);
    const moedist::DispatchHandle handle = first.dispatch(in, o);
    const TensorView weights = TensorView::contiguous(w.data(), DType::kFloat32, {2, 1});
    const TensorView x_out = TensorView::contiguous(out.data(), DType::kBFloat16, {2, 8});
    try {
        other.combine(handle, o.expand_x, weights, x_out);
        FAIL() << "a handle of another group must be refused";
    } catch (const moedist::Error& e) {
        EXPECT_EQ(e.code(), Code::kInnerTiling);
        EXPECT_NE(std::string(e.what()).find("another group"), std::string::npos) << e.what();
    }
    first.combine(handle, o.expand_x, weights, x_out);
    EXPECT_EQ(out, x);
}

}  // namespace

namespace {

class TrustRecover : public ::testing::Test {
protected:
    hostile::TempDir dir_;
};

std::string hostile_table(int ranks) { return hostile::rank_table_text(ranks); }

// A first phase that fails on one rank makes its peers' call fail at once (not after the
// timeout, here 30 s), naming the rank and the cause; the group stays usable.
TEST(FailFast, AFirstPhaseFailureOnOneRankFailsItsPeersAtOnceAndTheGroupGoesOn) {
    MOEDIST_SKIP_FORK_AFTER_THREADS();
    for (const bool processes : {false, true}) {
        const std::string key = unique_key("fastfail");
        trust::Board board(4);
        auto rank_body = [&](const Communicator& comm, int r) {
            trust::JobSpec spec;
            spec.timeout_ms = 30000;
            spec.short_expand_x = r == 1;
            const auto start = Clock::now();
            Status first = trust::run_rank(spec, comm);
            const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
            board.put(r, first);
            board.put(2 + r, seconds < 2.0 ? Status::Ok() : Status(Code::kRuntime, "slow"));
            spec.short_expand_x = false;  // the next call, right on both ranks
            return trust::run_rank(spec, comm);
        };
        Status next[2];
        if (processes) {
            std::vector<pid_t> pids;
            for (int r = 0; r < 2; ++r) {
                pids.push_back(trust::fork_child([&, r] {
                    Communicator comm;
                    Status s = join_pair(key, r, &comm);
                    if (s.ok()) s = rank_body(comm, r);
                    return s.ok() ? 0 : 1;
                }));
            }
            for (int r = 0; r < 2; ++r)
                next[r] = trust::wait_child(pids[static_cast<std::size_t>(r)], kWait) == 0
                              ? Status::Ok()
                              : Status(Code::kRuntime, "the next call failed");
        } else {
            auto comms = Communicator::create_local_group(2);
            std::thread t1([&] { next[1] = rank_body(comms[1], 1); });
            next[0] = rank_body(comms[0], 0);
            t1.join();
        }
        const char* backend = processes ? "processes" : "threads";
        EXPECT_EQ(board.code(1), 561002) << backend << ": " << board.message(1);
        EXPECT_EQ(board.code(0), 361001) << backend << ": " << board.message(0);
        EXPECT_NE(board.message(0).find("rank 1"), std::string::npos) << board.message(0);
        EXPECT_NE(board.message(0).find("expandX"), std::string::npos) << board.message(0);
        EXPECT_EQ(board.code(2), 0) << backend << ": rank 0 must fail well under a second";
        EXPECT_TRUE(next[0].ok() && next[1].ok())
            << backend << ": " << next[0].message() << " / " << next[1].message();
    }
}

// A group broken by a timeout (the config's own, 300 ms) is destroyed and made again from the
// same rank table in the same processes, and works.
TEST_F(TrustRecover, ABrokenGroupIsDestroyedAndMadeAgainFromTheSameTable) {
    const std::string path = dir_.write("table.json", hostile_table(2));
    trust::Board board(2);
    std::vector<pid_t> pids;
    for (int r = 0; r < 2; ++r) {
        pids.push_back(trust::fork_child([&, r] {
            Status s;
            {
                Communicator comm;
                s = Communicator::from_rank_table(path, r, &comm);
                trust::JobSpec spec;
                spec.timeout_ms = 300;
                if (s.ok() && r == 0) s = trust::run_rank(spec, comm);  // rank 1 never calls
                if (r == 0 && (s.ok() || s.message().find("300 ms") == std::string::npos)) {
                    board.put(r,
                              {Code::kRuntime,
                               "the call must time out after 300 ms, got: " + s.message()});
                    return 1;
                }
                if (r == 0 &&
                    trust::run_rank(spec, comm).message().find("broken") == std::string::npos) {
                    board.put(r, {Code::kRuntime, "the group must stay broken"});
                    return 1;
                }
                if (r == 1) std::this_thread::sleep_for(std::chrono::milliseconds(600));
            }  // destroyed (HcclCommDestroy)
            Communicator again;
            s = Communicator::from_rank_table(path, r, &again);
            if (s.ok()) s = trust::run_rank({}, again, 2);
            board.put(r, s);
            return s.ok() ? 0 : 1;
        }));
    }
    for (int r = 0; r < 2; ++r)
        EXPECT_EQ(trust::wait_child(pids[static_cast<std::size_t>(r)], kWait), 0)
            << board.message(r);
}

// Combine given dispatch's expandIdx as a contiguous (BS, K) tensor returns what the 1-D one
// does (every token back, checked by run_rank).
TEST(Combine, TakesExpandIdxAsAContiguousBsByKTensor) {
    auto comms = Communicator::create_local_group(2);
    trust::JobSpec spec;
    spec.expand_idx_2d = true;
    Status results[2];
    std::thread peer([&] { results[1] = trust::run_rank(spec, comms[1], 2); });
    results[0] = trust::run_rank(spec, comms[0], 2);
    peer.join();
    EXPECT_TRUE(results[0].ok() && results[1].ok()) << results[0].message() << results[1].message();
}

}  // namespace
