// Trust between processes, at the door: a rank table's rendezvous and the agents that hand out
// memory. An intruder under another user squats the rendezvous name or knocks at the hub and
// the agents; processes of this user send garbage, stay silent, claim ranks out of range or
// twice; two launches use one table at once; a rerun meets the survivor of the last run; the
// table changes between ranks' starts. The job either proceeds (its every row checked to be its
// own) or fails cleanly on every rank with a message that says why; nothing crashes or hangs.
//
// This binary runs with MOEDIST_TIMEOUT_MS=3000 (CMakeLists.txt), so a rank that waits in vain
// fails within seconds. Tests that need another user skip where this process is not root.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "moedist/moedist.hpp"
#include "support.hpp"
#include "transport/agent.hpp"
#include "transport/bootstrap.hpp"
#include "transport/shm_arena.hpp"
#include "transport/socket_rendezvous.hpp"
#include "trust_support.hpp"

namespace {

using moedist::Communicator;
using moedist::Status;
using Clock = std::chrono::steady_clock;

constexpr double kWait = 20;  // seconds a forked rank may take at most

// A rank of `table`'s job `job`, forked: joins through the table, runs the checked job, reports.
pid_t fork_table_rank(const trust::Board& board,
                      int slot,
                      const std::string& table,
                      int rank,
                      uint64_t job,
                      int world = 2) {
    return trust::fork_child([&board, slot, table, rank, job, world] {
        Communicator comm;
        Status s = Communicator::from_rank_table(table, rank, &comm);
        if (s.ok()) {
            trust::JobSpec spec;
            spec.world = world;
            spec.job = job;
            s = trust::run_rank(spec, comm);
        }
        board.put(slot, s);
        return s.ok() ? 0 : 1;
    });
}

// A launcher: a process that forks the `world` ranks of one job and exits 0 when all of them
// ran the job with every row their own.
pid_t fork_launcher(const std::string& table, uint64_t job, int world = 2) {
    return trust::fork_child([table, job, world] {
        trust::Board board(world);
        std::vector<pid_t> ranks;
        for (int r = 0; r < world; ++r)
            ranks.push_back(fork_table_rank(board, r, table, r, job, world));
        int failures = 0;
        for (pid_t p : ranks) failures += trust::wait_child(p, kWait) != 0;
        for (int r = 0; r < world && failures > 0; ++r)
            std::fprintf(stderr,
                         "job %llu rank %d: %d %s\n",
                         static_cast<unsigned long long>(job),
                         r,
                         board.code(r),
                         board.message(r).c_str());
        return failures == 0 ? 0 : 1;
    });
}

// A squatter under uid 65534 on every given name: it accepts whatever connects and answers with
// garbage, until killed.
pid_t fork_squatter(const std::vector<std::string>& names, int ready_fd) {
    return trust::fork_child([names, ready_fd] {
        std::vector<int> listeners;
        if (!trust::become_nobody()) return 2;
        for (const std::string& name : names) {
            sockaddr_un addr{};
            addr.sun_family = AF_UNIX;
            std::memcpy(addr.sun_path + 1, name.data(), name.size());
            const auto length =
                static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
            const int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
            if (bind(fd, reinterpret_cast<sockaddr*>(&addr), length) != 0 || listen(fd, 64) != 0)
                return 3;
            listeners.push_back(fd);
        }
        (void)!write(ready_fd, "r", 1);
        for (;;) {
            for (int l : listeners) {
                const int c = accept4(l, nullptr, nullptr, SOCK_NONBLOCK);
                if (c >= 0) (void)!send(c, "garbage\n\x1b[31mverdict", 20, MSG_NOSIGNAL);
            }
            usleep(1000);
        }
    });
}

class TrustTable : public ::testing::Test {
protected:
    std::string table(int ranks) {
        return dir_.write("table.json", hostile::rank_table_text(ranks));
    }
    hostile::TempDir dir_;
};

TEST_F(TrustTable, AnotherUsersSquatterOnTheRendezvousNameIsSkippedAndTheJobRuns) {
    if (!trust::can_change_user()) GTEST_SKIP() << "needs root to run an intruder as uid 65534";
    const std::string path = table(2);
    const std::string key = trust::child_rendezvous_key(path);
    ASSERT_FALSE(key.empty());
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    // The first three candidate names are another user's.
    const pid_t squatter = fork_squatter(
        {"moedist/" + key + "/0", "moedist/" + key + "/1", "moedist/" + key + "/2"}, ready[1]);
    char c = 0;
    ASSERT_EQ(read(ready[0], &c, 1), 1) << "the squatter must bind the names";
    trust::Board board(2);
    const pid_t r0 = fork_table_rank(board, 0, path, 0, 11);
    const pid_t r1 = fork_table_rank(board, 1, path, 1, 11);
    EXPECT_EQ(trust::wait_child(r0, kWait), 0) << board.message(0);
    EXPECT_EQ(trust::wait_child(r1, kWait), 0) << board.message(1);
    kill(squatter, SIGKILL);
    trust::wait_child(squatter, 5);
    close(ready[0]);
    close(ready[1]);
}

TEST_F(TrustTable, EveryNameHeldByAnotherUserFailsClearlyInsteadOfHanging) {
    if (!trust::can_change_user()) GTEST_SKIP() << "needs root to run an intruder as uid 65534";
    const std::string path = table(2);
    const std::string key = trust::child_rendezvous_key(path);
    std::vector<std::string> names;
    for (int i = 0; i < moedist::transport::SocketRendezvous::kNames; ++i)
        names.push_back("moedist/" + key + "/" + std::to_string(i));
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    const pid_t squatter = fork_squatter(names, ready[1]);
    char c = 0;
    ASSERT_EQ(read(ready[0], &c, 1), 1);
    trust::Board board(1);
    const auto start = Clock::now();
    const pid_t r0 = fork_table_rank(board, 0, path, 0, 12);
    EXPECT_EQ(trust::wait_child(r0, kWait), 1);
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(8));
    EXPECT_EQ(board.code(0), 361001);
    EXPECT_NE(board.message(0).find("held by other users"), std::string::npos) << board.message(0);
    kill(squatter, SIGKILL);
    trust::wait_child(squatter, 5);
    close(ready[0]);
    close(ready[1]);
}

// Connections to the hub that do not follow the protocol, each from a process of its own.
TEST_F(TrustTable, GarbageSilenceAndBadClaimsAtTheHubAreDroppedAndTheJobRuns) {
    const std::string path = table(2);
    const std::string key = trust::child_rendezvous_key(path);
    const std::string hub = "moedist/" + key + "/0";
    trust::Board board(2);
    const pid_t r0 = fork_table_rank(board, 0, path, 0, 13);
    int probe = -1;
    for (int i = 0; i < 400 && probe < 0; ++i) {  // until rank 0 is the hub
        probe = trust::connect_abstract(hub);
        if (probe < 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_GE(probe, 0) << "rank 0 must become the hub";
    close(probe);  // a connection that says nothing and leaves
    std::vector<pid_t> strangers;
    auto stranger = [&](std::function<void(int fd)> act, bool as_nobody) {
        strangers.push_back(trust::fork_child([=] {
            if (as_nobody && !trust::become_nobody()) return 2;
            const int fd = trust::connect_abstract(hub);
            if (fd < 0) return 0;  // refused at the door: fine
            act(fd);
            sleep(4);  // keep the connection open
            return 0;
        }));
    };
    moedist::transport::Claim claim;
    claim.size = 2;
    claim.rank = 7;  // out of range
    claim.pid = 0;
    stranger([claim](int fd) { (void)!send(fd, &claim, sizeof(claim), 0); }, false);
    stranger([](int fd) { (void)!send(fd, "\xff\xfe garbage", 10, 0); }, false);
    stranger([](int) {}, false);  // silent
    moedist::transport::Claim wrong_pid;
    wrong_pid.rank = 1;
    wrong_pid.size = 2;
    wrong_pid.pid = 1;  // not its own pid
    stranger([wrong_pid](int fd) { (void)!send(fd, &wrong_pid, sizeof(wrong_pid), 0); }, false);
    if (trust::can_change_user()) {
        stranger(
            [](int fd) {
                moedist::transport::Claim c;
                c.rank = 1;
                c.size = 2;
                c.pid = getpid();
                (void)!send(fd, &c, sizeof(c), 0);
            },
            true);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const pid_t r1 = fork_table_rank(board, 1, path, 1, 13);
    EXPECT_EQ(trust::wait_child(r0, kWait), 0) << board.message(0);
    EXPECT_EQ(trust::wait_child(r1, kWait), 0) << board.message(1);
    for (pid_t p : strangers) trust::wait_child(p, 10);
}

TEST_F(TrustTable, TwoLaunchesOnOneTableAtOnceNeverMix) {
    const std::string path = table(2);
    constexpr int kTrials = trust::trials(50, 8);
    for (int trial = 0; trial < kTrials; ++trial) {
        const pid_t a = fork_launcher(path, 1000 + static_cast<uint64_t>(trial));
        const pid_t b = fork_launcher(path, 5000 + static_cast<uint64_t>(trial));
        ASSERT_EQ(trust::wait_child(a, 2 * kWait), 0) << "trial " << trial;
        ASSERT_EQ(trust::wait_child(b, 2 * kWait), 0) << "trial " << trial;
    }
}

TEST_F(TrustTable, ARerunDoesNotJoinTheSurvivorOfTheLastRun) {
    const std::string path = table(2);
    trust::Board board(1);
    // The last run: its rank 1 died before joining; rank 0 still waits.
    const pid_t old_launcher = trust::fork_child([&] {
        const pid_t r0 = fork_table_rank(board, 0, path, 0, 21);
        return trust::wait_child(r0, kWait) == 1 ? 0 : 1;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const pid_t rerun = fork_launcher(path, 22);
    EXPECT_EQ(trust::wait_child(rerun, 2 * kWait), 0);
    EXPECT_EQ(trust::wait_child(old_launcher, 2 * kWait), 0);
    EXPECT_EQ(board.code(0), 361001);
    EXPECT_NE(board.message(0).find("rank 1"), std::string::npos) << board.message(0);
}

TEST_F(TrustTable, ARankClaimedTwiceInOneLaunchNeverFormsAMixedGroup) {
    const std::string path = table(2);
    trust::Board board(3);
    const pid_t r0 = fork_table_rank(board, 0, path, 0, 31);
    const pid_t r1a = fork_table_rank(board, 1, path, 1, 31);
    const pid_t r1b = fork_table_rank(board, 2, path, 1, 31);
    const int c0 = trust::wait_child(r0, kWait);
    const int c1a = trust::wait_child(r1a, kWait);
    const int c1b = trust::wait_child(r1b, kWait);
    // Either the hub saw both claims (every rank fails, naming the double claim), or the first
    // pair formed and ran its own job while the late claimant failed alone.
    for (int code : {c0, c1a, c1b}) EXPECT_TRUE(code == 0 || code == 1) << code;
    EXPECT_FALSE(c1a == 0 && c1b == 0) << "both claimants of rank 1 must not succeed";
    for (int slot = 0; slot < 3; ++slot) EXPECT_NE(board.code(slot), 900001) << board.message(slot);
    if (c0 != 0) {
        EXPECT_NE(board.message(0).find("claimed"), std::string::npos) << board.message(0);
    }
}

TEST_F(TrustTable, ATableRewrittenBetweenRanksStartsFailsEveryRankSayingSo) {
    const std::string path = table(2);
    trust::Board board(2);
    const pid_t r0 = fork_table_rank(board, 0, path, 0, 41);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    dir_.write("table.json", hostile::rank_table_text(3));
    const pid_t r1 = fork_table_rank(board, 1, path, 1, 41, 3);
    EXPECT_EQ(trust::wait_child(r0, kWait), 1);
    EXPECT_EQ(trust::wait_child(r1, kWait), 1);
    for (int slot = 0; slot < 2; ++slot) {
        EXPECT_EQ(board.code(slot), 361001);
        EXPECT_NE(board.message(slot).find("the rank table must not change between ranks' starts"),
                  std::string::npos)
            << board.message(slot);
    }
}

// The agent serves this user's processes only, and survives garbage.
TEST(TrustAgent, AnotherUserGetsNoDescriptorAndGarbageLeavesTheAgentServing) {
    void* block = moedist::transport::arena_allocate(4096);  // segment 0 is offered
    ASSERT_NE(block, nullptr);
    const moedist::transport::ProcessId self = moedist::transport::self_process();
    char name[96];
    std::snprintf(name,
                  sizeof(name),
                  "moedist-agent/%u/%d/%016llx",
                  static_cast<unsigned>(geteuid()),
                  self.pid,
                  static_cast<unsigned long long>(self.nonce));
    // Garbage of every small size from this user: dropped, the agent goes on.
    std::mt19937 rng(7);
    for (int size = 0; size < 64; ++size) {
        const int fd = trust::connect_abstract(name);
        ASSERT_GE(fd, 0);
        std::vector<char> junk(static_cast<std::size_t>(size));
        for (char& ch : junk) ch = static_cast<char>(rng());
        (void)!send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
        close(fd);
    }
    moedist::util::UniqueFd fd;
    Status fetched = moedist::transport::agent_fetch(self,
                                                     moedist::transport::AgentObject::kSegment,
                                                     99,
                                                     64 << 20,
                                                     Clock::now() + std::chrono::seconds(2),
                                                     &fd);
    EXPECT_FALSE(fetched.ok());
    EXPECT_NE(fetched.message().find("must serve the object"), std::string::npos)
        << fetched.message();
    if (trust::can_change_user()) {
        const std::string agent = name;
        const pid_t intruder = trust::fork_child([agent] {
            if (!trust::become_nobody()) return 2;
            const int conn = trust::connect_abstract(agent);
            if (conn < 0) return 0;  // refused before accept: fine
            // A well-formed request for segment 0 (magic "mdAg", version 1, kind 2, id 0).
            const uint32_t request[6] = {0x6D644167u, 1u, 2u, 0u, 0u, 0u};
            (void)!send(conn, request, sizeof(request), MSG_NOSIGNAL);
            char reply[64];
            alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
            iovec iov{reply, sizeof(reply)};
            msghdr msg{};
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control;
            msg.msg_controllen = sizeof(control);
            const ssize_t n = recvmsg(conn, &msg, 0);
            const bool got_fd = n > 0 && CMSG_FIRSTHDR(&msg) != nullptr;
            return got_fd ? 1 : 0;  // 0: nothing handed over
        });
        EXPECT_EQ(trust::wait_child(intruder, 10), 0) << "another user must get no descriptor";
    }
    moedist::transport::arena_free(block);
}

}  // namespace
