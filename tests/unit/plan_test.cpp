// The routing plan, with no transport: send plans, the chunk rule and receive layouts.
#include "core/plan.hpp"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace moedist::core {
namespace {

TEST(SendPlan, ExpandIdxCountsEarlierEntriesOfTheSameExpert) {
    // 3 tokens, K = 3, E = 4; duplicates inside token 1.
    const std::vector<int32_t> ids = {2,
                                      0,
                                      3,  //
                                      2,
                                      2,
                                      1,  //
                                      0,
                                      3,
                                      2};
    SendPlan plan;
    build_send_plan(ids.data(), 3, 1, 3, 3, 4, &plan);
    EXPECT_EQ(plan.expand_idx, (std::vector<int32_t>{0, 0, 0, 1, 2, 0, 1, 1, 3}));
    EXPECT_EQ(plan.expert_begin, (std::vector<int32_t>{0, 2, 3, 7, 9}));
    // Expert 2's entries in flattened order: (0,0)=0, (1,0)=3, (1,1)=4, (2,2)=8.
    EXPECT_EQ(std::vector<int32_t>(plan.entries_by_expert.begin() + 3,
                                   plan.entries_by_expert.begin() + 7),
              (std::vector<int32_t>{0, 3, 4, 8}));
    EXPECT_FALSE(plan.has_bad_id);
}

TEST(SendPlan, StridedIdsAndTheFirstBadId) {
    // ids stored column-major (row stride 1, column stride 2): tokens {1, 5}, {-1, 9}.
    const std::vector<int32_t> ids = {1, -1, 5, 9};
    SendPlan plan;
    build_send_plan(ids.data(), 1, 2, 2, 2, 8, &plan);
    ASSERT_TRUE(plan.has_bad_id);
    EXPECT_EQ(plan.bad_token, 1);
    EXPECT_EQ(plan.bad_k, 0);
    EXPECT_EQ(plan.bad_id, -1);
    EXPECT_EQ(plan.rows_for_expert(1), 1);
    EXPECT_EQ(plan.rows_for_expert(5), 1);
}

TEST(SendPlan, MatchesANaiveCountOnRandomIds) {
    std::mt19937 gen(7);
    const int64_t bs = 37, k = 5, e = 11;
    std::vector<int32_t> ids(static_cast<std::size_t>(bs * k));
    for (auto& id : ids) id = static_cast<int32_t>(gen() % e);
    SendPlan plan;
    build_send_plan(ids.data(), k, 1, bs, k, e, &plan);
    for (int64_t i = 0; i < bs * k; ++i) {
        int32_t earlier = 0;
        for (int64_t j = 0; j < i; ++j)
            earlier += ids[static_cast<std::size_t>(j)] == ids[static_cast<std::size_t>(i)];
        EXPECT_EQ(plan.expand_idx[static_cast<std::size_t>(i)], earlier) << i;
        const int64_t slot =
            plan.expert_begin[static_cast<std::size_t>(ids[static_cast<std::size_t>(i)])] + earlier;
        EXPECT_EQ(plan.entries_by_expert[static_cast<std::size_t>(slot)], i);
    }
}

TEST(SharedChunk, RotatesByRankAndCoversEveryToken) {
    // BS = 5, S = 2, rank 3: base = ⌊15/2⌋ = 7; s=0: [⌊15/2⌋−7, ⌊20/2⌋−7) = [0,3); s=1: [3,5).
    EXPECT_EQ(shared_chunk(3, 5, 2, 0).lo, 0);
    EXPECT_EQ(shared_chunk(3, 5, 2, 0).hi, 3);
    EXPECT_EQ(shared_chunk(3, 5, 2, 1).lo, 3);
    EXPECT_EQ(shared_chunk(3, 5, 2, 1).hi, 5);
    // rank 2: base = 5; s=0: [0, ⌊15/2⌋−5=2), s=1: [2,5).
    EXPECT_EQ(shared_chunk(2, 5, 2, 0).hi, 2);
    for (int64_t src = 0; src < 9; ++src) {
        for (int64_t bs : {0, 1, 4, 7}) {
            for (int64_t s_num : {1, 2, 3}) {
                int64_t covered = 0;
                for (int64_t s = 0; s < s_num; ++s) {
                    const TokenRange r = shared_chunk(src, bs, s_num, s);
                    EXPECT_EQ(r.lo, covered);
                    covered = r.hi;
                }
                EXPECT_EQ(covered, bs);
                for (int64_t t = 0; t < bs; ++t) {
                    const int64_t s = shared_rank_of_token(src, bs, s_num, t);
                    EXPECT_TRUE(shared_chunk(src, bs, s_num, s).contains(t));
                }
            }
        }
    }
}

TEST(ReceiveLayout, RunningTotalOverExpertThenSource) {
    // W = 3, L = 2: rows(src, e) = 10*e + src.
    ReceiveLayout layout;
    build_receive_layout(
        3, 2, [](int64_t src, int64_t e) { return 10 * e + src; }, &layout);
    EXPECT_EQ(layout.block_end, (std::vector<int64_t>{0, 1, 3, 13, 24, 36}));
    EXPECT_EQ(layout.total_rows, 36);
    EXPECT_EQ(layout.block_begin(4), 13);
}

TEST(RowsFrom, SharedRankKeepsOwnTokensAndGetsChunksFromMoeRanks) {
    const Topology topo{4, 2, 4, 2};  // W=4, S=2, E=4, L=2
    SendPlan plan;
    const std::vector<int32_t> ids = {0, 3, 2, 1};  // 2 tokens, K = 2
    build_send_plan(ids.data(), 2, 1, 2, 2, 4, &plan);
    EXPECT_EQ(rows_from(topo, 0, 0, 0, 6, plan), 6);  // own tokens
    EXPECT_EQ(rows_from(topo, 0, 1, 0, 6, plan), 0);  // other shared rank
    EXPECT_EQ(rows_from(topo, 1, 3, 0, 6, plan), shared_chunk(3, 6, 2, 1).size());
    EXPECT_EQ(rows_from(topo, 2, 1, 0, 2, plan), 1);  // expert 0 on rank 2
    EXPECT_EQ(rows_from(topo, 3, 1, 1, 2, plan), 1);  // expert 3 = rank 3, le 1
}

TEST(RowsToRank, EqualsTheSumOverTheReceiversLocalExperts) {
    std::mt19937 rng(7);
    for (int trial = 0; trial < 200; ++trial) {
        const int64_t W = 1 + static_cast<int64_t>(rng() % 9);
        const int64_t S = static_cast<int64_t>(rng() % static_cast<unsigned>(W));
        const int64_t L = 1 + static_cast<int64_t>(rng() % 4);
        const int64_t E = (W - S) * L;
        const int64_t K = 1 + static_cast<int64_t>(rng() % static_cast<unsigned>(E));
        const int64_t bs = static_cast<int64_t>(rng() % 7);
        std::vector<int32_t> ids(static_cast<std::size_t>(bs * K));
        for (auto& id : ids) id = static_cast<int32_t>(rng() % static_cast<unsigned>(E));
        const Topology topo{W, S, E, L};
        SendPlan plan;
        build_send_plan(ids.data(), K, 1, bs, K, E, &plan);
        for (int64_t src = 0; src < W; ++src) {
            for (int64_t dst = 0; dst < W; ++dst) {
                int64_t sum = 0;
                for (int64_t le = 0; le < topo.local_experts(dst); ++le)
                    sum += rows_from(topo, dst, src, le, bs, plan);
                EXPECT_EQ(rows_to_rank(topo, dst, src, bs, plan), sum)
                    << "W " << W << " S " << S << " L " << L << " src " << src << " dst " << dst;
            }
        }
    }
}

}  // namespace
}  // namespace moedist::core
