// Whole jobs on W·T thread ranks through the C++ API, every output compared bit for bit with
// the naive reference (inputs differ per source rank, token and column; weights per k).
#include "harness/job.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace {

using moedist::DType;
using moedist::harness::JobSpec;
using moedist::harness::Routing;

JobSpec base(int W, int S, int E, int K, int H, int64_t bs) {
    JobSpec s;
    s.ep_world_size = W;
    s.shared_rank_num = S;
    s.moe_expert_num = E;
    s.top_k = K;
    s.hidden = H;
    s.tokens = bs;
    s.seed = static_cast<uint64_t>(W * 1000 + S * 100 + E + K * 7 + H);
    return s;
}

std::vector<JobSpec> valid_jobs() {
    std::vector<JobSpec> jobs;
    // World sizes, shared ranks, both dtypes, both quant modes (with/without smooth), comm quant.
    int variant = 0;
    for (int W : {1, 2, 3, 4, 7, 8, 16}) {
        for (int S : {0, 1, 2}) {
            if (S >= W) continue;
            const int moe_ranks = W - S;
            const int L = (variant % 3 == 0) ? 1 : (variant % 3 == 1 ? 2 : 3);
            const int E = moe_ranks * L;
            const int K = std::min(E, 1 + variant % 4);
            JobSpec s = base(W, S, E, K, 64 + 8 * (variant % 5) + (variant % 2), 3 + variant % 6);
            s.dtype = variant % 2 ? DType::kFloat16 : DType::kBFloat16;
            s.quant_mode = (variant % 4 >= 2) ? 2 : 0;
            s.smooth_scales = variant % 4 == 3;
            s.comm_quant_mode = (variant % 5 == 1) ? 2 : 0;
            s.expert_token_nums_type = variant % 2;
            s.uneven_bs = variant % 3 == 2;
            s.global_bs_zero = variant % 4 != 1;
            s.strided_x = variant % 5 == 4;
            s.extra_rows = variant % 3;
            jobs.push_back(s);
            ++variant;
        }
    }
    // TP = 2 (L == 1), with and without shared ranks, quant and comm quant.
    for (int W : {2, 3, 4, 8}) {
        for (int S : {0, 1}) {
            if (S >= W) continue;
            JobSpec s = base(W, S, W - S, std::min(W - S, 2), 48, 5);
            s.tp_size = 2;
            s.dtype = W % 2 ? DType::kFloat16 : DType::kBFloat16;
            s.quant_mode = (W + S) % 2 ? 2 : 0;
            s.smooth_scales = S == 1;
            s.comm_quant_mode = W == 4 ? 2 : 0;
            s.uneven_bs = W == 8;
            jobs.push_back(s);
        }
    }
    // Skewed routing: a single hot expert, zipf, duplicate ids.
    JobSpec hot = base(4, 0, 8, 3, 96, 16);
    hot.routing = Routing::kHot;
    jobs.push_back(hot);
    JobSpec zipf = base(8, 1, 14, 4, 40, 12);
    zipf.routing = Routing::kZipf;
    zipf.quant_mode = 2;
    jobs.push_back(zipf);
    JobSpec dup = base(3, 0, 12, 4, 33, 9);
    dup.routing = Routing::kDuplicates;
    jobs.push_back(dup);
    JobSpec dup_shared = base(4, 1, 9, 6, 24, 7);
    dup_shared.routing = Routing::kDuplicates;
    dup_shared.quant_mode = 2;
    dup_shared.smooth_scales = true;
    dup_shared.comm_quant_mode = 2;
    jobs.push_back(dup_shared);
    // A DeepSeek-like row width, strided.
    JobSpec wide = base(4, 1, 6, 3, 7168, 4);
    wide.strided_x = true;
    wide.quant_mode = 2;
    wide.smooth_scales = true;
    jobs.push_back(wide);
    // The same machinery through the aclnn C API (junk in every reserved input).
    for (std::size_t i : {0u, 7u, 11u, 14u, 19u, 23u, 25u}) {
        JobSpec c = jobs[i];
        c.c_api = true;
        c.seed += 17;
        jobs.push_back(c);
    }
    JobSpec c_strided = base(3, 1, 4, 2, 40, 6);
    c_strided.c_api = true;
    c_strided.strided_x = true;
    jobs.push_back(c_strided);
    // Every rank with BS = 0 but one, and all BS = 0.
    JobSpec empty = base(4, 1, 3, 2, 16, 0);
    jobs.push_back(empty);
    return jobs;
}

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

}  // namespace
