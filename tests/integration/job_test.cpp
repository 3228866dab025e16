// Whole jobs on W·T thread ranks through the C++ API, every output compared bit for bit with
// the naive reference (inputs differ per source rank, token and column; weights per k).
#include "harness/job.hpp"
#include "job_specs.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace {

using moedist::harness::JobSpec;
using moedist::test_specs::valid_jobs;

class JobTest : public ::testing::TestWithParam<JobSpec> {};

TEST_P(JobTest, MatchesReferenceBitForBit) {
    const JobSpec& spec = GetParam();
    ASSERT_EQ(moedist::harness::spec_error(spec), "");
    const auto report = moedist::harness::run_job(spec, /*steps=*/2, /*check=*/true);
    EXPECT_TRUE(report.ok) << report.first_mismatch;
    EXPECT_EQ(report.steps.size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Valid,
                         JobTest,
                         ::testing::ValuesIn(valid_jobs()),
                         [](const ::testing::TestParamInfo<JobSpec>& param_info) {
                             return std::to_string(param_info.index) + "_" +
                                    param_info.param.describe();
                         });

// The same suite with every rank a process of its own (forked; EP and TP groups joined through
// the socket rendezvous, tensors in the shared-memory arena): the same reference, so the bits
// equal the threads backend's.
std::vector<JobSpec> process_jobs() {
    std::vector<JobSpec> jobs;
    for (JobSpec s : valid_jobs()) {
        if (s.ep_world_size * s.tp_size > 32) continue;
        s.backend = moedist::harness::Backend::kProcesses;
        jobs.push_back(s);
    }
    return jobs;
}

INSTANTIATE_TEST_SUITE_P(Processes,
                         JobTest,
                         ::testing::ValuesIn(process_jobs()),
                         [](const ::testing::TestParamInfo<JobSpec>& param_info) {
                             return std::to_string(param_info.index) + "_" +
                                    param_info.param.describe();
                         });

// The V2 family on threads and on processes.
std::vector<JobSpec> v2_jobs_on_both() {
    std::vector<JobSpec> jobs = moedist::test_specs::v2_jobs();
    for (JobSpec s : moedist::test_specs::v2_jobs()) {
        s.backend = moedist::harness::Backend::kProcesses;
        jobs.push_back(s);
    }
    return jobs;
}

INSTANTIATE_TEST_SUITE_P(V2,
                         JobTest,
                         ::testing::ValuesIn(v2_jobs_on_both()),
                         [](const ::testing::TestParamInfo<JobSpec>& param_info) {
                             return std::to_string(param_info.index) + "_" +
                                    param_info.param.describe();
                         });

}  // namespace
