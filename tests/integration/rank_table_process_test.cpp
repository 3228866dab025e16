// Rank tables with ranks as processes, as the seed's A2 path runs them: each forked process calls
// HcclCommInitClusterInfo and dispatches. A crashed job leaves nothing that trips the next one
// with the same table; two jobs with different tables at once do not see each other; a table
// with another host's server says to run under mpirun; a rank table whose ranks are threads of
// one process (initialized one after the other by one thread) still forms its group.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "acl/acl.h"
#include "hccl/hccl.h"
#include "moedist/moedist.hpp"
#include "process_support.hpp"

namespace {

using namespace moedist::process_test;
using Clock = std::chrono::steady_clock;

std::string write_table(const std::string& name, int ranks, const std::string& server) {
    const std::string path = "/tmp/moedist-test-" + std::to_string(getpid()) + "-" + name + ".json";
    std::ofstream out(path);
    out << R"({"version": "1.0", "server_list": [{"server_id": ")" << server << R"(", "device": [)";
    for (int r = 0; r < ranks; ++r) {
        out << (r ? "," : "") << R"({"device_id": ")" << r << R"(", "rank_id": ")" << r << R"("})";
    }
    out << "]}]}";
    return path;
}

// Forks `world` processes on `table`; rank `victim` SIGKILLs itself after init. Each survivor
// runs `calls` dispatches and reports.
std::vector<Outcome> run_table(const std::string& table, int world, int victim, int calls) {
    auto* outcomes = static_cast<Outcome*>(mmap(nullptr,
                                                sizeof(Outcome) * world,
                                                PROT_READ | PROT_WRITE,
                                                MAP_SHARED | MAP_ANONYMOUS,
                                                -1,
                                                0));
    for (int r = 0; r < world; ++r) new (&outcomes[r]) Outcome();
    std::vector<pid_t> pids;
    std::fflush(nullptr);
    for (int rank = 0; rank < world; ++rank) {
        const pid_t pid = fork();
        if (pid == 0) {
            HcclComm comm = nullptr;
            if (HcclCommInitClusterInfo(table.c_str(), static_cast<uint32_t>(rank), &comm) !=
                HCCL_SUCCESS)
                _exit(10);
            if (rank == victim) raise(SIGKILL);
            char name[128] = {};
            HcclGetCommName(comm, name);
            moedist::Communicator c;
            if (!moedist::Communicator::find(name, rank, &c).ok()) _exit(11);
            Rank mine(world, rank);
            moedist::MoeDistributor moe(c, std::nullopt, mine.config);
            for (int i = 0; i < calls; ++i) {
                const moedist::Status st = moe.try_dispatch(mine.in, mine.out);
                outcomes[rank].calls = i + 1;
                if (!st.ok()) {
                    outcomes[rank].code = st.raw_code();
                    std::snprintf(outcomes[rank].message,
                                  sizeof(outcomes[rank].message),
                                  "%s",
                                  st.message().c_str());
                    _exit(0);
                }
            }
            outcomes[rank].code = 0;
            HcclCommDestroy(comm);
            _exit(0);
        }
        pids.push_back(pid);
    }
    for (pid_t pid : pids) waitpid(pid, nullptr, 0);
    std::vector<Outcome> result(outcomes, outcomes + world);
    munmap(outcomes, sizeof(Outcome) * world);
    return result;
}

class RankTableProcesses : public ::testing::Test {
protected:
    void SetUp() override { shm_before_ = dev_shm(); }
    void TearDown() override {
        EXPECT_EQ(dev_shm(), shm_before_);
        for (const auto& p : tables_) std::remove(p.c_str());
    }
    std::string table(const std::string& name, int ranks, const std::string& server = "127.0.0.1") {
        tables_.push_back(write_table(name, ranks, server));
        return tables_.back();
    }
    std::vector<std::string> shm_before_;
    std::vector<std::string> tables_;
};

TEST_F(RankTableProcesses, ACrashedJobLeavesNothingForTheNextJobOnTheSameTable) {
    const std::string path = table("crash", 4);
    const auto crashed = run_table(path, 4, /*victim=*/3, 1);
    // The group forms in the background after HcclCommInitClusterInfo returns, so the victim dies
    // either after it formed (the survivors' call names rank 3) or while it forms (their join
    // fails at the rendezvous: the victim may have been its hub); 361001 either way.
    for (int r = 0; r < 3; ++r) {
        const std::string message = crashed[static_cast<std::size_t>(r)].message;
        EXPECT_EQ(crashed[static_cast<std::size_t>(r)].code, 361001) << message;
        EXPECT_TRUE(message.find("rank 3") != std::string::npos ||
                    message.find("rendezvous") != std::string::npos)
            << message;
    }
    for (const Outcome& o : run_table(path, 4, -1, 5)) {
        EXPECT_EQ(o.code, 0) << o.message;
        EXPECT_EQ(o.calls, 5);
    }
}

TEST_F(RankTableProcesses, TwoJobsWithDifferentTablesRunAtOnce) {
    // Both jobs' processes are forked (from this one thread) before either is waited for.
    const std::string a = table("a", 3), b = table("b", 2);
    const pid_t job_b = fork();
    if (job_b == 0) {
        bool ok = true;
        for (const Outcome& o : run_table(b, 2, -1, 50)) ok = ok && o.code == 0 && o.calls == 50;
        _exit(ok ? 0 : 1);
    }
    const std::vector<Outcome> ra = run_table(a, 3, -1, 50);
    int status = -1;
    waitpid(job_b, &status, 0);
    for (const Outcome& o : ra) EXPECT_EQ(o.code, 0) << o.message;
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "job b failed";
}

TEST_F(RankTableProcesses, ARankWhoseServerIsAnotherHostIsRefusedNamingIt) {
    // Without a launcher a table across hosts is joined host by host: a rank must run on its
    // own server (or MOEDIST_SERVER_ID must say this host is it).
    const std::string path = table("remote", 2, "10.255.1.2");
    HcclComm comm = nullptr;
    EXPECT_EQ(HcclCommInitClusterInfo(path.c_str(), 0, &comm), HCCL_E_PARA);
    EXPECT_EQ(comm, nullptr);
    const char* message = aclGetRecentErrMsg();
    ASSERT_NE(message, nullptr);
    EXPECT_NE(std::string(message).find("must run on its server '10.255.1.2'"), std::string::npos)
        << message;
    EXPECT_NE(std::string(message).find("MOEDIST_SERVER_ID"), std::string::npos) << message;
}

TEST_F(RankTableProcesses, ThreadRanksInitializedOneAfterTheOtherFormTheirGroup) {
    const std::string path = table("threads", 3, "localhost");
    std::vector<HcclComm> comms(3, nullptr);
    for (uint32_t r = 0; r < 3; ++r)
        ASSERT_EQ(HcclCommInitClusterInfo(path.c_str(), r, &comms[r]), HCCL_SUCCESS);
    std::vector<moedist::Status> results(3);
    std::vector<std::thread> threads;
    for (int r = 0; r < 3; ++r) {
        threads.emplace_back([&, r] {
            char name[128] = {};
            HcclGetCommName(comms[static_cast<std::size_t>(r)], name);
            moedist::Communicator c;
            results[static_cast<std::size_t>(r)] = moedist::Communicator::find(name, r, &c);
            if (!results[static_cast<std::size_t>(r)].ok()) return;
            Rank mine(3, r);
            moedist::MoeDistributor moe(c, std::nullopt, mine.config);
            results[static_cast<std::size_t>(r)] = moe.try_dispatch(mine.in, mine.out);
        });
    }
    for (auto& t : threads) t.join();
    for (const auto& s : results) EXPECT_TRUE(s.ok()) << s.message();
    for (HcclComm c : comms) EXPECT_EQ(HcclCommDestroy(c), HCCL_SUCCESS);
}

}  // namespace
