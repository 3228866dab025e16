// The whole-job suite under mpirun (the mpi backend): every job of the suite whose W·T is the
// MPI world size, checked bit for bit against the same reference as the threads and processes
// backends (so the outputs are bit-identical to theirs). Launched by ctest as
//   mpirun -np N moedist_mpi_tests          with 1, 2 or 4 simulated nodes (MOEDIST_RANKS_PER_NODE)
// Jobs with TP = 2 run on one node and with EP groups across nodes (the TP pair relays its rows),
// whenever a TP pair shares a simulated node (MOEDIST_RANKS_PER_NODE >= 2).
#include "harness/mpi_job.hpp"

#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "job_specs.hpp"

namespace {

using moedist::harness::JobSpec;

int world_size() {
    int n = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    return n;
}

int ranks_per_node() {
    const char* per = std::getenv("MOEDIST_RANKS_PER_NODE");
    return per != nullptr ? std::atoi(per) : 0;
}

bool several_nodes(const JobSpec& s) {
    return ranks_per_node() > 0 && ranks_per_node() < s.ep_world_size;
}

// A TP group of two with one rank per simulated node is split (refused: test_tp_split below).
bool pair_split() { return ranks_per_node() == 1; }

std::vector<JobSpec> mpi_jobs() {
    std::vector<JobSpec> jobs;
    std::vector<JobSpec> all = moedist::test_specs::valid_jobs();
    for (const JobSpec& s : moedist::test_specs::v2_jobs()) all.push_back(s);
    for (const JobSpec& s : all) {
        if (s.ep_world_size * s.tp_size != world_size()) continue;
        if (s.tp_size == 2 && pair_split()) continue;
        jobs.push_back(s);
    }
    return jobs;
}

class MpiJobTest : public ::testing::TestWithParam<JobSpec> {};

TEST_P(MpiJobTest, MatchesReferenceBitForBit) {
    moedist::harness::MpiTraffic traffic;
    const auto report = moedist::harness::run_mpi_job(GetParam(), 2, true, &traffic);
    EXPECT_TRUE(report.ok) << report.first_mismatch;
    // Hierarchical: a token crosses once per destination node however many of its experts
    // live there, so never more rows cross than a flat all-to-all would send.
    EXPECT_LE(traffic.dispatch_rows, traffic.dispatch_flat_rows);
    const bool no_active = GetParam().mask != 0 && GetParam().mask_inactive >= 1.0;
    if (several_nodes(GetParam()) && GetParam().tokens > 0 && !no_active) {
        EXPECT_GT(traffic.dispatch_flat_rows, 0);
    }
}

INSTANTIATE_TEST_SUITE_P(Mpi,
                         MpiJobTest,
                         ::testing::ValuesIn(mpi_jobs()),
                         [](const ::testing::TestParamInfo<JobSpec>& param) {
                             return std::to_string(param.index) + "_" + param.param.describe();
                         });

}  // namespace

int main(int argc, char** argv) {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    ::testing::InitGoogleTest(&argc, argv);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank != 0) {  // rank 0 reports
        ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
        delete listeners.Release(listeners.default_result_printer());
    }
    int failed = RUN_ALL_TESTS();
    int any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return any;
}
