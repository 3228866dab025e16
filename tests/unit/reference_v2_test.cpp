// Hand-computed checks of the naive V2 reference (tests/reference/reference_v2*). Each expected
// value is worked out in the comments from docs/contract.md §10, not from the reference's code;
// where a value is not a short literal, the test spells out the contract's binary32 steps itself.
#include "reference_v2.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "reference.hpp"

namespace {

namespace r = moedist_ref;
namespace v2 = moedist_ref::v2;
using r::Elem;

uint16_t bf(float v) { return r::f32_to_bf16(v); }
float fb(uint16_t b) { return r::bf16_to_f32(b); }

std::vector<uint16_t> bfv(const std::vector<float>& v) {
    std::vector<uint16_t> out;
    for (float f : v) out.push_back(bf(f));
    return out;
}

// A bf16, quantMode 0, T = 1 job (globalBs 0).
v2::JobConfig make_cfg(int W, int S, int N, int E, int K, int H) {
    v2::JobConfig c;
    c.base.ep_world_size = W;
    c.base.shared_rank_num = S;
    c.base.moe_expert_num = E;
    c.base.top_k = K;
    c.base.hidden = H;
    c.base.x_elem = Elem::kBFloat16;
    c.base.expand_elem = Elem::kBFloat16;
    c.base.combine_elem = Elem::kBFloat16;
    c.shared_expert_num = N;
    return c;
}

v2::RankInput make_rank(int64_t bs,
                        const std::vector<float>& x,
                        const std::vector<int32_t>& ids,
                        const std::vector<float>& expert_scales) {
    v2::RankInput in;
    in.base.num_tokens = bs;
    in.base.x = bfv(x);
    in.base.expert_ids = ids;
    in.base.expert_scales = expert_scales;
    return in;
}

// Element j of bf16 row `row` of expand_x.
float ex(const v2::DispatchOutput& o, int64_t row, int h, int j) {
    uint16_t b = 0;
    std::memcpy(&b, o.expand_x.data() + (static_cast<size_t>(row * h + j)) * 2, 2);
    return fb(b);
}

struct Triple {
    int src, t, slot;
    bool operator==(const Triple& o) const { return src == o.src && t == o.t && slot == o.slot; }
};
std::ostream& operator<<(std::ostream& os, const Triple& t) {
    return os << "(" << t.src << "," << t.t << "," << t.slot << ")";
}

std::vector<Triple> triples(const v2::DispatchOutput& o) {
    std::vector<Triple> out;
    for (int64_t i = 0; i < o.own_rows; ++i) {
        const size_t b = static_cast<size_t>(3 * i);
        out.push_back(Triple{o.assist_info[b], o.assist_info[b + 1], o.assist_info[b + 2]});
    }
    return out;
}

// Every expert returns its input unchanged (bf16 expandX reinterpreted as 16-bit values).
std::vector<std::vector<uint16_t>> identity_experts(const std::vector<v2::DispatchOutput>& d) {
    std::vector<std::vector<uint16_t>> out;
    for (const v2::DispatchOutput& o : d) {
        std::vector<uint16_t> v(o.expand_x.size() / 2);
        std::memcpy(v.data(), o.expand_x.data(), v.size() * 2);
        out.push_back(v);
    }
    return out;
}

// ------------------------------------------------------------------------------------------------
// Routing, assist triples, counts (§10.3, §10.4)
// ------------------------------------------------------------------------------------------------
// W = 6, S = 4, N = 2 -> R = 2: shared expert 0 on ranks {0, 1}, expert 1 on {2, 3}; MoE ranks
// 4 (expert 0) and 5 (expert 1), E = 2 (L = 1), K = 2, H = 2, BS = 2. Token t of rank r has
// x = [10r + t, -(10r + t)]. Rank r sends its tokens to shared ranks (r mod 2) + 2j, j = 0, 1.
std::vector<v2::RankInput> six_rank_inputs() {
    const std::vector<std::vector<int32_t>> ids = {
        {0, 1, 1, 1}, {1, 0, 0, 0}, {0, 1, 1, 0}, {1, 1, 0, 1}, {0, 0, 1, 0}, {1, 0, 1, 0}};
    std::vector<v2::RankInput> in;
    for (int rk = 0; rk < 6; ++rk) {
        const float a = static_cast<float>(10 * rk), b = a + 1.0f;
        in.push_back(
            make_rank(2, {a, -a, b, -b}, ids[static_cast<size_t>(rk)], {0.5f, 0.5f, 0.5f, 0.5f}));
    }
    in[1].base.expert_scales = {0.5f, 0.25f, 0.5f, 0.5f};  // (1, 0, k1) carries 0.25
    return in;
}

TEST(ReferenceV2Dispatch, ReplicaRuleAndMoeOrderWithTwoSharedExperts) {
    v2::JobConfig cfg = make_cfg(6, 4, 2, 2, 2, 2);
    cfg.base.has_expert_scales = true;
    const std::vector<v2::RankInput> in = six_rank_inputs();
    std::string err;
    const std::vector<v2::DispatchOutput> d = v2::dispatch(cfg, in, &err);
    ASSERT_EQ(d.size(), 6u) << err;

    // Shared rank 0 (expert 0): srcs ≡ 0 (mod 2) ascending = 0, 2, 4, tokens ascending, slot K+0.
    EXPECT_EQ(
        triples(d[0]),
        (std::vector<Triple>{{0, 0, 2}, {0, 1, 2}, {2, 0, 2}, {2, 1, 2}, {4, 0, 2}, {4, 1, 2}}));
    // Shared rank 2 (expert 1): the same srcs, slot K+1; its own tokens sit at src 2, after src 0.
    EXPECT_EQ(
        triples(d[2]),
        (std::vector<Triple>{{0, 0, 3}, {0, 1, 3}, {2, 0, 3}, {2, 1, 3}, {4, 0, 3}, {4, 1, 3}}));
    EXPECT_EQ(ex(d[2], 0, 2, 0), 0.0f);   // src 0, t 0
    EXPECT_EQ(ex(d[2], 2, 2, 0), 20.0f);  // its own t 0, third row
    EXPECT_EQ(ex(d[2], 5, 2, 1), -41.0f);
    // Shared rank 3 (expert 1): srcs 1, 3, 5; its own tokens in the middle.
    EXPECT_EQ(
        triples(d[3]),
        (std::vector<Triple>{{1, 0, 3}, {1, 1, 3}, {3, 0, 3}, {3, 1, 3}, {5, 0, 3}, {5, 1, 3}}));
    EXPECT_EQ(triples(d[1])[2], (Triple{3, 0, 2}));
    // A = maxBs·⌈W/R⌉ = 2·3 = 6 on a shared rank (V1's ⌈maxBs·W/S⌉ would be 3).
    EXPECT_EQ(d[0].capacity_rows, 6);
    EXPECT_EQ(v2::capacity_rows(cfg, 1, 2), 6);
    EXPECT_EQ(d[0].assist_info.size(), 18u);
    // epRecvCounts indexed by src, inclusive; srcs ≢ s (mod R) add 0.
    EXPECT_EQ(d[0].ep_recv_counts, (std::vector<int32_t>{2, 2, 4, 4, 6, 6}));
    EXPECT_EQ(d[3].ep_recv_counts, (std::vector<int32_t>{0, 2, 2, 4, 4, 6}));
    EXPECT_EQ(d[0].expert_token_nums, (std::vector<int64_t>{6}));
    EXPECT_EQ(d[0].expand_scales, (std::vector<float>(6, 1.0f)));  // shared rows: 1.0

    // MoE rank 4 (expert 0): src-major, each src's active entries in flattened (t,k) order:
    // src0 (0,0,0) | src1 (1,0,1) (1,1,0) (1,1,1) | src2 (2,0,0) (2,1,1) | src3 (3,1,0) |
    // src4 (4,0,0) (4,0,1) (4,1,1) | src5 (5,0,1) (5,1,1). 12 rows = A = maxBs·W·min(L,K).
    EXPECT_EQ(triples(d[4]),
              (std::vector<Triple>{{0, 0, 0},
                                   {1, 0, 1},
                                   {1, 1, 0},
                                   {1, 1, 1},
                                   {2, 0, 0},
                                   {2, 1, 1},
                                   {3, 1, 0},
                                   {4, 0, 0},
                                   {4, 0, 1},
                                   {4, 1, 1},
                                   {5, 0, 1},
                                   {5, 1, 1}}));
    EXPECT_EQ(d[4].capacity_rows, 12);
    EXPECT_EQ(d[4].ep_recv_counts, (std::vector<int32_t>{1, 4, 6, 7, 10, 12}));
    EXPECT_EQ(d[4].expert_token_nums, (std::vector<int64_t>{12}));
    EXPECT_EQ(ex(d[4], 1, 2, 0), 10.0f);   // (1, 0): x = 10
    EXPECT_EQ(ex(d[4], 6, 2, 1), -31.0f);  // (3, 1): x = -31
    EXPECT_EQ(d[4].expand_scales[1], 0.25f);
    EXPECT_EQ(d[4].expand_scales[0], 0.5f);
    // MoE rank 5 (expert 1).
    EXPECT_EQ(d[5].ep_recv_counts, (std::vector<int32_t>{3, 4, 6, 9, 10, 12}));
    EXPECT_EQ(triples(d[5])[3], (Triple{1, 0, 0}));
    EXPECT_EQ(triples(d[5])[11], (Triple{5, 1, 0}));

    // Combine with identity experts: each token gets 0.5x + 0.5x from its two entries (rank 1's
    // token 0: 0.25x + 0.5x), then both shared rows with weight 1: 3x (2.75x), exact in bf16.
    cfg.base.has_expert_scales = false;
    const std::vector<v2::CombineOutput> c = v2::combine(cfg, in, d, identity_experts(d), &err);
    ASSERT_EQ(c.size(), 6u) << err;
    EXPECT_EQ(fb(c[5].x[2]), 153.0f);  // rank 5 t1: x = 51
    EXPECT_EQ(fb(c[5].x[3]), -153.0f);
    EXPECT_EQ(fb(c[1].x[0]), 27.5f);  // rank 1 t0: 2.75·10
    EXPECT_EQ(fb(c[2].x[0]), 60.0f);  // rank 2 t0: 3·20
    EXPECT_EQ(c[0].active, (std::vector<uint8_t>{1, 1}));
}

TEST(ReferenceV2Dispatch, SharedCapacityWhenRDoesNotDivideW) {
    // W = 5, S = 4, N = 2 -> R = 2: shared rank 0 hears srcs 0, 2, 4 (3·BS rows), rank 1 hears
    // 1, 3 (2·BS rows). A = maxBs·⌈5/2⌉ = 3·maxBs, exactly enough; E = 1 on rank 4.
    const v2::JobConfig cfg = make_cfg(5, 4, 2, 1, 1, 1);
    std::vector<v2::RankInput> in;
    for (int rk = 0; rk < 5; ++rk)
        in.push_back(make_rank(2, {1.0f * static_cast<float>(rk), 0.5f}, {0, 0}, {1.0f, 1.0f}));
    std::string err;
    const std::vector<v2::DispatchOutput> d = v2::dispatch(cfg, in, &err);
    ASSERT_EQ(d.size(), 5u) << err;
    EXPECT_EQ(d[0].capacity_rows, 6);
    EXPECT_EQ(d[0].own_rows, 6);
    EXPECT_EQ(d[1].own_rows, 4);
    EXPECT_EQ(d[1].capacity_rows, 6);
    EXPECT_EQ(d[4].capacity_rows, 2 * 5 * 1);
    EXPECT_EQ(d[0].assist_info[3 * 5], 4);  // last own row from src 4
    EXPECT_EQ(d[1].assist_info[3 * 4], 0);  // tail past 3·ownRows
    EXPECT_EQ(d[1].ep_recv_counts, (std::vector<int32_t>{0, 2, 2, 4, 4}));
}

TEST(ReferenceV2Dispatch, RunTimeErrors) {
    v2::JobConfig cfg = make_cfg(2, 0, 1, 2, 2, 1);
    cfg.zero_experts = 1;  // E' = 3
    auto ranks = [] {
        return std::vector<v2::RankInput>{make_rank(1, {1}, {0, 2}, {1, 1}),
                                          make_rank(1, {2}, {1, 1}, {1, 1})};
    };
    std::string err;
    EXPECT_EQ(v2::dispatch(cfg, ranks(), &err).size(), 2u) << err;  // id 2 = zero expert: fine

    std::vector<v2::RankInput> in = ranks();
    in[1].base.expert_ids = {1, 3};  // 3 = E': out of [0, E')
    EXPECT_TRUE(v2::dispatch(cfg, in, &err).empty());
    EXPECT_NE(err.find("rank 1"), std::string::npos) << err;
    EXPECT_NE(err.find("expertIds[1]"), std::string::npos) << err;
    in[1].base.expert_ids = {-1, 1};
    err.clear();
    EXPECT_TRUE(v2::dispatch(cfg, in, &err).empty());
    EXPECT_NE(err.find("got -1"), std::string::npos) << err;

    // Unequal BS with globalBs = 0 is an error; with globalBs = maxBs·W it is fine.
    in = ranks();
    in[1] = make_rank(0, {}, {}, {});
    err.clear();
    EXPECT_TRUE(v2::dispatch(cfg, in, &err).empty());
    EXPECT_NE(err.find("BS"), std::string::npos) << err;
    cfg.base.global_bs = 2;
    EXPECT_EQ(v2::dispatch(cfg, in, &err).size(), 2u) << err;

    // More rows than A: L = 1, K = 2, every entry to expert 0: 4 rows > A = 1·2·1 = 2.
    cfg.base.global_bs = 0;
    in = ranks();
    in[0].base.expert_ids = {0, 0};
    in[1].base.expert_ids = {0, 0};
    err.clear();
    EXPECT_TRUE(v2::dispatch(cfg, in, &err).empty());
    EXPECT_NE(err.find("A = 2"), std::string::npos) << err;
    EXPECT_TRUE(v2::combine(cfg, in, {}, {}, &err).empty());
}

// ------------------------------------------------------------------------------------------------
// Masks (§10.2)
// ------------------------------------------------------------------------------------------------
// W = 2, S = 0, E = 2 (L = 1), K = 2, H = 1, BS = 3; x of rank r token t = 10r + t + 1.
// Rank 0 mask {1,1,0}, rank 1 {1,0,0}: the inactive tokens' ids are garbage and never read.
TEST(ReferenceV2Mask, OneDimensionalPrefix) {
    v2::JobConfig cfg = make_cfg(2, 0, 1, 2, 2, 1);
    cfg.mask = v2::Mask::kTokens;
    std::vector<v2::RankInput> in = {
        make_rank(3, {1, 2, 3}, {0, 1, 1, 1, 99, -7}, {1, 2, 1, 2, 1, 2}),
        make_rank(3, {11, 12, 13}, {1, 0, 1000, 1000, 5, 5}, {1, 2, 1, 2, 1, 2})};
    in[0].mask = {1, 1, 0};
    in[1].mask = {1, 0, 0};
    std::string err;
    const std::vector<v2::DispatchOutput> d = v2::dispatch(cfg, in, &err);
    ASSERT_EQ(d.size(), 2u) << err;
    // Expert 0: src0 (0,0,0) | src1 (1,0,1). Expert 1: src0 (0,0,1) (0,1,0) (0,1,1) | src1 (1,0,0).
    EXPECT_EQ(triples(d[0]), (std::vector<Triple>{{0, 0, 0}, {1, 0, 1}}));
    EXPECT_EQ(triples(d[1]), (std::vector<Triple>{{0, 0, 1}, {0, 1, 0}, {0, 1, 1}, {1, 0, 0}}));
    EXPECT_EQ(d[1].ep_recv_counts, (std::vector<int32_t>{3, 4}));
    EXPECT_EQ(d[0].expert_token_nums, (std::vector<int64_t>{2}));
    EXPECT_EQ(ex(d[1], 2, 1, 0), 2.0f);

    // Combine: active tokens get x·1 + x·2 = 3x; inactive ones are not written (active 0).
    const std::vector<v2::CombineOutput> c = v2::combine(cfg, in, d, identity_experts(d), &err);
    ASSERT_EQ(c.size(), 2u) << err;
    EXPECT_EQ(c[0].active, (std::vector<uint8_t>{1, 1, 0}));
    EXPECT_EQ(c[1].active, (std::vector<uint8_t>{1, 0, 0}));
    EXPECT_EQ(fb(c[0].x[0]), 3.0f);
    EXPECT_EQ(fb(c[0].x[1]), 6.0f);
    EXPECT_EQ(c[0].x[2], 0);
    EXPECT_EQ(fb(c[1].x[0]), 33.0f);
    EXPECT_EQ(c[1].x[1], 0);

    // Not a prefix: {1,0,1} has n = 2, so mask[1] must be true. {0,1,1}: mask[0] must be.
    in[1].mask = {1, 0, 1};
    err.clear();
    EXPECT_TRUE(v2::dispatch(cfg, in, &err).empty());
    EXPECT_NE(err.find("rank 1"), std::string::npos) << err;
    EXPECT_NE(err.find("xActiveMask[1]"), std::string::npos) << err;
    in[1].mask = {0, 1, 1};
    err.clear();
    EXPECT_TRUE(v2::combine(cfg, in, d, identity_experts(d), &err).empty());
    EXPECT_NE(err.find("xActiveMask[0]"), std::string::npos) << err;
    in[1].mask = {0, 0, 0};  // n = 0: a prefix; rank 1 sends nothing
    const std::vector<v2::DispatchOutput> d0 = v2::dispatch(cfg, in, &err);
    ASSERT_EQ(d0.size(), 2u) << err;
    EXPECT_EQ(d0[0].own_rows + d0[1].own_rows, 4);
}

// W = 3, S = 1, N = 1 (R = 1), E = 2 (L = 1), Z = 1 (zero id 2), K = 2, H = 2, BS = 3, 2-D mask.
// x of rank r token t = [10r + t + 1, -1]; expertScales [0.5, 0.25] on every token.
TEST(ReferenceV2Mask, TwoDimensionalEntriesAndSpecialOnlyTokens) {
    v2::JobConfig cfg = make_cfg(3, 1, 1, 2, 2, 2);
    cfg.zero_experts = 1;
    cfg.mask = v2::Mask::kEntries;
    const std::vector<float> sc = {0.5f, 0.25f, 0.5f, 0.25f, 0.5f, 0.25f};
    std::vector<v2::RankInput> in = {
        make_rank(3, {1, -1, 2, -1, 3, -1}, {1, 77, -3, 1000, 2, 2}, sc),
        make_rank(3, {11, -1, 12, -1, 13, -1}, {0, 1, 55, 0, 0, 0}, sc),
        make_rank(3, {21, -1, 22, -1, 23, -1}, {1, 0, 0, 2, 1, 1}, sc)};
    in[0].mask = {1, 0, 0, 0, 1, 1};  // t1 fully masked (inactive); t2 only zero experts
    in[1].mask = {1, 1, 0, 1, 0, 0};  // t2 inactive
    in[2].mask = {1, 1, 1, 1, 1, 1};
    std::string err;
    const std::vector<v2::DispatchOutput> d = v2::dispatch(cfg, in, &err);
    ASSERT_EQ(d.size(), 3u) << err;
    // Shared rank 0 hears every rank's active tokens: rank 0's t2 (all special) is one of them,
    // rank 0's t1 and rank 1's t2 are not.
    EXPECT_EQ(triples(d[0]),
              (std::vector<Triple>{
                  {0, 0, 2}, {0, 2, 2}, {1, 0, 2}, {1, 1, 2}, {2, 0, 2}, {2, 1, 2}, {2, 2, 2}}));
    EXPECT_EQ(d[0].ep_recv_counts, (std::vector<int32_t>{2, 4, 7}));
    // Expert 0 (rank 1): src1 (1,0,0) (1,1,1) | src2 (2,0,1) (2,1,0).
    EXPECT_EQ(triples(d[1]), (std::vector<Triple>{{1, 0, 0}, {1, 1, 1}, {2, 0, 1}, {2, 1, 0}}));
    EXPECT_EQ(d[1].ep_recv_counts, (std::vector<int32_t>{0, 2, 4}));
    // Expert 1 (rank 2): src0 (0,0,0) | src1 (1,0,1) | src2 (2,0,0) (2,2,0) (2,2,1).
    EXPECT_EQ(triples(d[2]),
              (std::vector<Triple>{{0, 0, 0}, {1, 0, 1}, {2, 0, 0}, {2, 2, 0}, {2, 2, 1}}));
    EXPECT_EQ(d[2].ep_recv_counts, (std::vector<int32_t>{1, 2, 5}));

    // Combine, identity experts: Σ over active MoE entries of s·x, zero entries nothing, + x.
    const std::vector<v2::CombineOutput> c = v2::combine(cfg, in, d, identity_experts(d), &err);
    ASSERT_EQ(c.size(), 3u) << err;
    EXPECT_EQ(c[0].active, (std::vector<uint8_t>{1, 0, 1}));
    EXPECT_EQ(fb(c[0].x[0]), 1.5f);  // 0.5·1 + 1
    EXPECT_EQ(fb(c[0].x[1]), -1.5f);
    EXPECT_EQ(c[0].x[2], 0);         // inactive: untouched
    EXPECT_EQ(fb(c[0].x[4]), 3.0f);  // only the shared row
    EXPECT_EQ(fb(c[0].x[5]), -1.0f);
    EXPECT_EQ(fb(c[1].x[2]), 15.0f);  // k1 only: 0.25·12 + 12
    EXPECT_EQ(fb(c[1].x[3]), -1.25f);
    EXPECT_EQ(c[1].active[2], 0);
    EXPECT_EQ(fb(c[2].x[2]), 33.0f);   // 0.5·22 + zero + 22
    EXPECT_EQ(fb(c[2].x[4]), 40.25f);  // 0.5·23 + 0.25·23 + 23 = 101000.01b, exact in bf16
}

// ------------------------------------------------------------------------------------------------
// Combine: special experts, weights, sharedExpertX, AddRmsNorm, commQuantMode 2 (§10.5–§10.7)
// ------------------------------------------------------------------------------------------------
// W = 1, E = 1, K = 3, Z = 1 (id 1), C = 1 (id 2), Q = 2 (ids 3, 4), H = 3, BS = 2.
// t0 ids [0, 2, 3] scales [0.5, 0.25, 2]; t1 ids [4, 1, 0] scales [1.5, 3, -1].
// oriX t0 = [1, 2, -3], t1 = [0.5, 4, 8]; v0 = [1, 1, 1], v1 = [0.25, -2, 4].
// The expert returns row i as [3 + i, -1, 0.125] (row 0 = (0,0,0), row 1 = (0,1,2)).
struct SpecialJob {
    v2::JobConfig cfg;
    std::vector<v2::RankInput> in;
    std::vector<v2::DispatchOutput> d;
    std::vector<std::vector<uint16_t>> out;
};

SpecialJob special_job(int alpha_form) {
    SpecialJob j;
    j.cfg = make_cfg(1, 0, 1, 1, 3, 3);
    j.cfg.zero_experts = 1;
    j.cfg.copy_experts = 1;
    j.cfg.const_experts = 2;
    j.cfg.const_alpha_form = alpha_form;
    j.in = {make_rank(
        2, {9, 9, 9, 9, 9, 9}, {0, 2, 3, 4, 1, 0}, {0.5f, 0.25f, 2.0f, 1.5f, 3.0f, -1.0f})};
    j.in[0].ori_x = bfv({1, 2, -3, 0.5f, 4, 8});
    j.in[0].const_v = bfv({1, 1, 1, 0.25f, -2, 4});
    if (alpha_form == 1) {
        j.in[0].alpha1 = bfv({2, 0.5f});
        j.in[0].alpha2 = bfv({1, -1});
    } else {
        // c = 0: l1 = 1+2-3 = 0 = l2 (p = 0.5, 0.5); c = 1: l1 = 2·0.5 = 1, l2 = 0.
        j.in[0].alpha1 = bfv({1, 1, 1, 2, 0, 0});
        j.in[0].alpha2 = bfv({0, 0, 0, 0, 0, 0});
    }
    std::string err;
    j.d = v2::dispatch(j.cfg, j.in, &err);
    EXPECT_EQ(j.d.size(), 1u) << err;
    if (j.d.empty()) return j;
    EXPECT_EQ(j.d[0].own_rows, 2);
    j.out.assign(1, std::vector<uint16_t>(j.d[0].expand_x.size() / 2, 0));
    for (int i = 0; i < 2; ++i) {
        const std::vector<uint16_t> row = bfv({3.0f + static_cast<float>(i), -1, 0.125f});
        for (size_t h = 0; h < 3; ++h) j.out[0][static_cast<size_t>(i) * 3 + h] = row[h];
    }
    return j;
}

TEST(ReferenceV2Combine, ZeroCopyConstScalarAlpha) {
    SpecialJob j = special_job(1);
    ASSERT_EQ(j.d.size(), 1u);
    std::string err;
    const std::vector<v2::CombineOutput> c = v2::combine(j.cfg, j.in, j.d, j.out, &err);
    ASSERT_EQ(c.size(), 1u) << err;
    // t0: MoE 0.5·[3,-1,0.125] = [1.5,-0.5,0.0625]; copy 0.25·[1,2,-3] = [0.25,0.5,-0.75];
    //     const c=0: u = x·2 + v0·1 = [3,5,-5], ·2 = [6,10,-10]. Sum [7.75, 10, -10.6875].
    EXPECT_EQ(fb(c[0].x[0]), 7.75f);
    EXPECT_EQ(fb(c[0].x[1]), 10.0f);
    EXPECT_EQ(fb(c[0].x[2]), -10.6875f);
    // t1: const c=1: u = [0.5,4,8]·0.5 + [0.25,-2,4]·(-1) = [0,4,0], ·1.5 = [0,6,0]; zero: nothing;
    //     MoE -1·[4,-1,0.125] = [-4,1,-0.125]. Sum [-4, 7, -0.125].
    EXPECT_EQ(fb(c[0].x[3]), -4.0f);
    EXPECT_EQ(fb(c[0].x[4]), 7.0f);
    EXPECT_EQ(fb(c[0].x[5]), -0.125f);

    // Unweighted (expertScales empty): every s is 1.0f.
    j.cfg.weighted = false;
    j.in[0].base.expert_scales.clear();
    const std::vector<v2::CombineOutput> u = v2::combine(j.cfg, j.in, j.d, j.out, &err);
    ASSERT_EQ(u.size(), 1u) << err;
    // t0: [3,-1,0.125] + [1,2,-3] + [3,5,-5] = [7, 6, -7.875]; t1: [0,4,0] + [4,-1,0.125].
    EXPECT_EQ(fb(u[0].x[0]), 7.0f);
    EXPECT_EQ(fb(u[0].x[1]), 6.0f);
    EXPECT_EQ(fb(u[0].x[2]), -7.875f);
    EXPECT_EQ(fb(u[0].x[3]), 4.0f);
    EXPECT_EQ(fb(u[0].x[4]), 3.0f);
    EXPECT_EQ(fb(u[0].x[5]), 0.125f);
}

TEST(ReferenceV2Combine, ConstGateAlphaPerElement) {
    const SpecialJob j = special_job(2);
    ASSERT_EQ(j.d.size(), 1u);
    std::string err;
    const std::vector<v2::CombineOutput> c = v2::combine(j.cfg, j.in, j.d, j.out, &err);
    ASSERT_EQ(c.size(), 1u) << err;
    // t0, c = 0: l1 = l2 = 0 -> e = 1, 1, σ = 2, p = 0.5, 0.5; u = 0.5·[1,2,-3] + 0.5·[1,1,1] =
    //     [1, 1.5, -1], ·2 = [2, 3, -2]. Sum with MoE and copy: [3.75, 3, -2.6875].
    EXPECT_EQ(fb(c[0].x[0]), 3.75f);
    EXPECT_EQ(fb(c[0].x[1]), 3.0f);
    EXPECT_EQ(fb(c[0].x[2]), -2.6875f);
    // t1, c = 1: l1 = fl32(fl32(0 + 2·0.5) + 0·4) + 0·8 = 1, l2 = 0, m = 1; d = 0, -1;
    //     e1 = 1, e2 = expf(-1) correctly rounded; σ, p1, p2 in binary32.
    const float e2 = static_cast<float>(std::exp(-1.0));
    EXPECT_EQ(e2, 0.36787944f);
    const float sigma = 1.0f + e2;
    const float p1 = 1.0f / sigma;
    const float p2 = e2 / sigma;
    EXPECT_NEAR(p1, 0.7310586f, 1e-7f);  // the logistic function at 1
    const float x1[3] = {0.5f, 4.0f, 8.0f}, v1[3] = {0.25f, -2.0f, 4.0f};
    const float moe[3] = {4.0f, -1.0f, 0.125f};
    for (int h = 0; h < 3; ++h) {
        const float xp = x1[h] * p1;
        const float vp = v1[h] * p2;
        const float uh = xp + vp;
        const float term = uh * 1.5f;
        const float acc1 = 0.0f + term;
        const float moe_term = moe[h] * -1.0f;
        const float acc2 = acc1 + moe_term;
        EXPECT_EQ(c[0].x[static_cast<size_t>(3 + h)], bf(acc2)) << "h " << h;
    }
    EXPECT_NEAR(fb(c[0].x[4]), 4.58f, 0.02f);  // (4·p1 − 2·p2)·1.5 + 1 ≈ 4.579
}

TEST(ReferenceV2Combine, ConstGateSumsInHOrderFromZero) {
    // W = 1, E = 1, K = 1, Q = 1 (id 1), H = 3, BS = 1, alpha (Q, H).
    // oriX = [2^24, 1, -2^24], alpha1 = [1, 1, 1]: l1 = fl32(fl32(2^24 + 1) − 2^24) = 0 (the
    // tie 2^24 + 1 rounds to even 2^24); alpha2 = 0: l2 = 0. So p = 0.5, 0.5 and, with v = 0,
    // u = 0.5·x = [2^23, 0.5, -2^23]. (Any other order would give l1 = 1 and p1 ≈ 0.731.)
    v2::JobConfig cfg = make_cfg(1, 0, 1, 1, 1, 3);
    cfg.const_experts = 1;
    cfg.const_alpha_form = 2;
    const float big = 16777216.0f;
    std::vector<v2::RankInput> in = {make_rank(1, {0, 0, 0}, {1}, {1.0f})};
    in[0].ori_x = bfv({big, 1, -big});
    in[0].alpha1 = bfv({1, 1, 1});
    in[0].alpha2 = bfv({0, 0, 0});
    in[0].const_v = bfv({0, 0, 0});
    std::string err;
    const std::vector<v2::DispatchOutput> d = v2::dispatch(cfg, in, &err);
    ASSERT_EQ(d.size(), 1u) << err;
    EXPECT_EQ(d[0].own_rows, 0);  // a const entry is never sent
    const std::vector<v2::CombineOutput> c = v2::combine(cfg, in, d, identity_experts(d), &err);
    ASSERT_EQ(c.size(), 1u) << err;
    EXPECT_EQ(fb(c[0].x[0]), 8388608.0f);
    EXPECT_EQ(fb(c[0].x[1]), 0.5f);
    EXPECT_EQ(fb(c[0].x[2]), -8388608.0f);
}

TEST(ReferenceV2Combine, ConstGateSubtractsTheMaximum) {
    // H = 1, oriX = [128], alpha1 = [1], alpha2 = [0]: l1 = 128, l2 = 0, m = 128; e1 = expf(0)
    // = 1, e2 = expf(-128) ≈ 2.6e-56 rounds to +0; σ = 1, p = 1, 0; u = 128·1 + 5·0 = 128.
    // (Without the max, expf(128) would overflow to Inf and p1 would be NaN.)
    v2::JobConfig cfg = make_cfg(1, 0, 1, 1, 1, 1);
    cfg.const_experts = 1;
    cfg.const_alpha_form = 2;
    std::vector<v2::RankInput> in = {make_rank(1, {0}, {1}, {1.0f})};
    in[0].ori_x = bfv({128});
    in[0].alpha1 = bfv({1});
    in[0].alpha2 = bfv({0});
    in[0].const_v = bfv({5});
    std::string err;
    const std::vector<v2::DispatchOutput> d = v2::dispatch(cfg, in, &err);
    ASSERT_EQ(d.size(), 1u) << err;
    const std::vector<v2::CombineOutput> c = v2::combine(cfg, in, d, identity_experts(d), &err);
    ASSERT_EQ(c.size(), 1u) << err;
    EXPECT_EQ(fb(c[0].x[0]), 128.0f);
}

TEST(ReferenceV2Combine, SharedExpertXAddedLastUnweighted) {
    // W = 2, S = 0, E = 2, K = 1, H = 2, BS = 1; expertScales 0.5; identity experts.
    // x = sharedExpertX + 0.5·x_row, the former with weight 1.
    v2::JobConfig cfg = make_cfg(2, 0, 1, 2, 1, 2);
    cfg.shared_expert_x = true;
    std::vector<v2::RankInput> in = {make_rank(1, {4, -6}, {1}, {0.5f}),
                                     make_rank(1, {8, 2}, {0}, {0.5f})};
    in[0].shared_x = bfv({1, 0.25f});
    in[1].shared_x = bfv({-3, 10});
    std::string err;
    const std::vector<v2::DispatchOutput> d = v2::dispatch(cfg, in, &err);
    ASSERT_EQ(d.size(), 2u) << err;
    const std::vector<v2::CombineOutput> c = v2::combine(cfg, in, d, identity_experts(d), &err);
    ASSERT_EQ(c.size(), 2u) << err;
    EXPECT_EQ(fb(c[0].x[0]), 3.0f);    // 2 + 1
    EXPECT_EQ(fb(c[0].x[1]), -2.75f);  // -3 + 0.25
    EXPECT_EQ(fb(c[1].x[0]), 1.0f);    // 4 − 3
    EXPECT_EQ(fb(c[1].x[1]), 11.0f);   // 1 + 10
    // Only with S = 0.
    v2::JobConfig bad = make_cfg(3, 1, 1, 2, 1, 2);
    bad.shared_expert_x = true;
    in.push_back(in[0]);
    EXPECT_TRUE(v2::combine(bad, in, {}, {}, &err).empty());
    EXPECT_NE(err.find("sharedExpertX"), std::string::npos) << err;
}

TEST(ReferenceV2Combine, AddRmsNorm) {
    // W = 1, E = 1, K = 1, BS = 3 (token 2 masked out by a 1-D mask), identity expert, weight 1.
    // H = 2: token 0 x = [1, 3], residual [2, 1] -> s = [3, 4]; s²·inv = [4.5, 8], ms = 12.5;
    //   eps 3.5 -> sqrt(16) = 4, rstd = 0.25; y = rne(rne(s·0.25)·gamma) = [0.75·2, 1·(-0.5)].
    // token 1 x = [1, 1], residual [0, 0] -> s = [1, 1], ms = 1, rstd = 1/sqrt(4.5) in binary32.
    v2::JobConfig cfg = make_cfg(1, 0, 1, 1, 1, 2);
    cfg.add_rms_norm = true;
    cfg.norm_eps = 3.5f;
    cfg.mask = v2::Mask::kTokens;
    std::vector<v2::RankInput> in = {make_rank(3, {1, 3, 1, 1, 5, 5}, {0, 0, 0}, {1, 1, 1})};
    in[0].mask = {1, 1, 0};
    in[0].residual_x = bfv({2, 1, 0, 0, 7, 7});
    in[0].gamma = bfv({2, -0.5f});
    std::string err;
    const std::vector<v2::DispatchOutput> d = v2::dispatch(cfg, in, &err);
    ASSERT_EQ(d.size(), 1u) << err;
    const std::vector<v2::CombineOutput> c = v2::combine(cfg, in, d, identity_experts(d), &err);
    ASSERT_EQ(c.size(), 1u) << err;
    ASSERT_EQ(c[0].y.size(), 6u);
    ASSERT_EQ(c[0].rstd.size(), 3u);
    EXPECT_EQ(fb(c[0].x[0]), 3.0f);  // xOut = rne(s)
    EXPECT_EQ(fb(c[0].x[1]), 4.0f);
    EXPECT_EQ(c[0].rstd[0], 0.25f);
    EXPECT_EQ(fb(c[0].y[0]), 1.5f);
    EXPECT_EQ(fb(c[0].y[1]), -0.5f);
    // Token 1, the contract's steps in binary32.
    const float inv = 1.0f / 2.0f;
    const float term = (1.0f * 1.0f) * inv;
    const float ms = (0.0f + term) + term;
    const float rstd = 1.0f / std::sqrt(ms + 3.5f);
    EXPECT_EQ(c[0].rstd[1], rstd);
    EXPECT_EQ(c[0].y[2], bf(fb(bf(1.0f * rstd)) * 2.0f));
    EXPECT_EQ(c[0].y[3], bf(fb(bf(1.0f * rstd)) * -0.5f));
    // Token 2 inactive: x, y, rstd untouched.
    EXPECT_EQ(c[0].active, (std::vector<uint8_t>{1, 1, 0}));
    EXPECT_EQ(c[0].x[4], 0);
    EXPECT_EQ(c[0].y[5], 0);
    EXPECT_EQ(c[0].rstd[2], 0.0f);

    // H = 3: inv = fl32(1/3) is inexact; s = [1, 1, 1] (x 1, residual 0), eps 1e-6.
    v2::JobConfig c3 = make_cfg(1, 0, 1, 1, 1, 3);
    c3.add_rms_norm = true;
    std::vector<v2::RankInput> in3 = {make_rank(1, {1, 1, 1}, {0}, {1})};
    in3[0].residual_x = bfv({0, 0, 0});
    in3[0].gamma = bfv({1, 1, 1});
    const std::vector<v2::DispatchOutput> d3 = v2::dispatch(c3, in3, &err);
    ASSERT_EQ(d3.size(), 1u) << err;
    const std::vector<v2::CombineOutput> o3 = v2::combine(c3, in3, d3, identity_experts(d3), &err);
    ASSERT_EQ(o3.size(), 1u) << err;
    const float inv3 = 1.0f / 3.0f;
    const float ms1 = 0.0f + inv3;
    const float ms2 = ms1 + inv3;
    const float ms3 = ms2 + inv3;
    const float shifted = ms3 + 1e-6f;
    const float root = std::sqrt(shifted);
    EXPECT_EQ(o3[0].rstd[0], 1.0f / root);
}

TEST(ReferenceV2Combine, CommQuantModeTwoOnSharedRows) {
    // W = 2, S = 1, N = 1, E = 1 (rank 1), K = 1, H = 2, BS = 1, identity experts with x
    // = [127, 0.30078125] (bf16 of 0.3). Each token: MoE row + shared row (weight 1 each).
    // commQuantMode 0: 2x = [254, 0.6015625]. commQuantMode 2, every returned row (shared ones
    // included): one block, m = 127, s32 = fl32(127·fl32(1/127)) ≈ 1 -> scale rne_bf16 = 1.0;
    // q = [127, rne(0.3007…) = 0] -> [127, 0]; so x = [254, 0].
    v2::JobConfig cfg = make_cfg(2, 1, 1, 1, 1, 2);
    const std::vector<v2::RankInput> in = {make_rank(1, {127, 0.3f}, {0}, {1}),
                                           make_rank(1, {127, 0.3f}, {0}, {1})};
    std::string err;
    const std::vector<v2::DispatchOutput> d = v2::dispatch(cfg, in, &err);
    ASSERT_EQ(d.size(), 2u) << err;
    EXPECT_EQ(d[0].own_rows, 2);  // the shared rank hears both ranks
    const std::vector<v2::CombineOutput> c0 = v2::combine(cfg, in, d, identity_experts(d), &err);
    ASSERT_EQ(c0.size(), 2u) << err;
    EXPECT_EQ(fb(c0[0].x[0]), 254.0f);
    EXPECT_EQ(fb(c0[0].x[1]), 0.6015625f);
    cfg.base.comm_quant_mode = 2;
    // Shared rows only carry the small value: the MoE rows come back as exact zeros (m = 0).
    std::vector<std::vector<uint16_t>> out = identity_experts(d);
    out[1].assign(out[1].size(), 0);
    const std::vector<v2::CombineOutput> c2 = v2::combine(cfg, in, d, out, &err);
    ASSERT_EQ(c2.size(), 2u) << err;
    for (int g = 0; g < 2; ++g) {
        EXPECT_EQ(fb(c2[static_cast<size_t>(g)].x[0]), 127.0f) << g;
        EXPECT_EQ(c2[static_cast<size_t>(g)].x[1], 0) << g;  // the shared row's 0.3 lost
    }
}

TEST(ReferenceV2Dispatch, DynamicScalesSmoothRowPerDestination) {
    // W = 3, S = 2, N = 2 (R = 1): rank 0 = shared expert 0, rank 1 = shared expert 1, rank 2 =
    // MoE expert 0. quantMode 2 int8 with smooth scales (N+E, H) = 3 rows; x = [1, 127] on every
    // rank (BS 1). Row j for shared expert j, row N + e = 2 for MoE expert 0:
    //   row 0 [1, 1]:     y = [1, 127],   ds = 127/127 = 1, q = [1, 127],   scale 1
    //   row 1 [4, 0.25]:  y = [4, 31.75], ds = 4,           q = [16, 127],  scale 0.25
    //   row 2 [2, 0.5]:   y = [2, 63.5],  ds = 2,           q = [4, 127],   scale 0.5
    // (V1's rule, e + 1, would have used row 1 for the MoE rows.)
    v2::JobConfig cfg = make_cfg(3, 2, 2, 1, 1, 2);
    cfg.base.quant_mode = 2;
    cfg.base.expand_elem = Elem::kInt8;
    cfg.base.has_smooth_scales = true;
    std::vector<v2::RankInput> in;
    for (int rk = 0; rk < 3; ++rk) {
        in.push_back(make_rank(1, {1, 127}, {0}, {1}));
        in.back().base.scales = {1, 1, 4, 0.25f, 2, 0.5f};
    }
    std::string err;
    const std::vector<v2::DispatchOutput> d = v2::dispatch(cfg, in, &err);
    ASSERT_EQ(d.size(), 3u) << err;
    const int want_q0[3] = {1, 16, 4};
    const float want_scale[3] = {1.0f, 0.25f, 0.5f};
    for (size_t g = 0; g < 3; ++g) {
        ASSERT_EQ(d[g].own_rows, 3) << g;
        EXPECT_EQ(d[g].capacity_rows, 3) << g;  // shared: 1·⌈3/1⌉; MoE: 1·3·1
        for (size_t i = 0; i < 3; ++i) {
            EXPECT_EQ(static_cast<int8_t>(d[g].expand_x[i * 2]), want_q0[g]) << g << " " << i;
            EXPECT_EQ(static_cast<int8_t>(d[g].expand_x[i * 2 + 1]), 127) << g << " " << i;
            EXPECT_EQ(d[g].dynamic_scales[i], want_scale[g]) << g << " " << i;
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Property: where V2 must agree with V1
// ------------------------------------------------------------------------------------------------
// With no mask, no special experts, weighted combine and S ∈ {0, 1} with N = 1, the contract
// gives V2 the V1 layouts: MoE rows in the same (expert, src, (t,k)) order, smooth rows N + e =
// e + (S>0), and with S = 1 (R = 1) a shared rank hearing every src ascending, itself first at
// src 0, with A = maxBs·W both ways. So dispatch outputs other than expandIdx/assist and the
// combined x must be equal, and both references must fail together.
struct RandomJob {
    r::JobConfig v1;
    v2::JobConfig cfg;
    std::vector<r::RankInput> in1;
    std::vector<v2::RankInput> in2;
};

RandomJob random_job(std::mt19937& rng) {
    auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    auto real = [&](float lo, float hi) {
        return std::uniform_real_distribution<float>(lo, hi)(rng);
    };
    RandomJob j;
    r::JobConfig& c = j.v1;
    c.ep_world_size = pick(1, 4);
    c.shared_rank_num = c.ep_world_size >= 2 ? pick(0, 1) : 0;
    c.tp_size = pick(1, 2);
    const int L = c.tp_size == 2 ? 1 : pick(1, 3);
    c.moe_expert_num = L * (c.ep_world_size - c.shared_rank_num);
    c.top_k = pick(1, std::min(c.moe_expert_num, 4));
    c.hidden = pick(0, 5) == 0 ? 130 + pick(0, 70) : pick(1, 40);
    c.x_elem = pick(0, 1) == 0 ? Elem::kBFloat16 : Elem::kFloat16;
    c.combine_elem = pick(0, 1) == 0 ? Elem::kBFloat16 : Elem::kFloat16;
    const Elem fp8 = pick(0, 1) == 0 ? Elem::kFp8E4M3 : Elem::kFp8E5M2;
    c.quant_mode = pick(0, 4);
    if (c.quant_mode == 0) {
        if (pick(0, 3) == 0) c.x_elem = fp8;  // pre-quantized x
        c.expand_elem = c.x_elem;
    } else if (c.quant_mode == 1) {
        c.expand_elem = Elem::kInt8;
        c.static_scales = pick(1, 3);
    } else {
        c.expand_elem = c.quant_mode == 2 && pick(0, 2) == 0 ? Elem::kInt8 : fp8;
        c.has_smooth_scales = c.quant_mode != 4 && pick(0, 1) == 0;
    }
    c.has_expert_scales = pick(0, 1) == 0;
    c.expert_token_nums_type = pick(0, 1);
    c.comm_quant_mode = pick(0, 1) * 2;
    const bool uneven = pick(0, 1) == 0;
    const int max_bs = pick(0, 4);
    c.global_bs = uneven ? int64_t{max_bs} * c.ep_world_size : 0;
    const int64_t rows_e = c.moe_expert_num + c.shared_rank_num;  // N + E with N = S here
    const int64_t H = c.hidden;
    for (int g = 0; g < c.ep_world_size * c.tp_size; ++g) {
        r::RankInput in;
        in.num_tokens = uneven ? pick(0, max_bs) : max_bs;
        const int64_t n = in.num_tokens * H;
        for (int64_t i = 0; i < n; ++i) {
            if (r::Elem::kFloat16 == c.x_elem || r::Elem::kBFloat16 == c.x_elem) {
                const float v = real(-8.0f, 8.0f);
                in.x.push_back(c.x_elem == Elem::kFloat16 ? r::f32_to_f16(v) : bf(v));
            } else {
                in.x8.push_back(static_cast<uint8_t>(pick(0, 255) & 0x77));  // finite, either fp8
            }
        }
        if (!in.x8.empty() || (c.quant_mode == 0 && c.x_elem == fp8))
            for (int64_t t = 0; t < in.num_tokens; ++t) in.x_scales.push_back(real(0.1f, 2.0f));
        for (int64_t i = 0; i < in.num_tokens * c.top_k; ++i) {
            in.expert_ids.push_back(pick(0, c.moe_expert_num - 1));
            in.expert_scales.push_back(real(-1.0f, 1.0f));
        }
        const int64_t ns = c.quant_mode == 1     ? (c.static_scales == 1   ? 1
                                                    : c.static_scales == 2 ? H
                                                                           : rows_e * H)
                           : c.has_smooth_scales ? rows_e * H
                                                 : 0;
        for (int64_t i = 0; i < ns; ++i) in.scales.push_back(real(0.25f, 4.0f));
        j.in1.push_back(in);
        v2::RankInput in2;
        in2.base = in;
        j.in2.push_back(in2);
    }
    j.cfg.base = c;
    j.cfg.shared_expert_num = 1;
    return j;
}

TEST(ReferenceV2Property, AgreesWithV1WhereTheContractsCoincide) {
    std::mt19937 rng(20261206);
    int compared = 0;
    for (int iter = 0; iter < 400; ++iter) {
        const RandomJob j = random_job(rng);
        SCOPED_TRACE("iteration " + std::to_string(iter));
        std::string e1, e2;
        const std::vector<r::DispatchOutput> d1 = r::dispatch(j.v1, j.in1, &e1);
        const std::vector<v2::DispatchOutput> d2 = v2::dispatch(j.cfg, j.in2, &e2);
        ASSERT_EQ(d1.empty(), d2.empty()) << e1 << " | " << e2;
        if (d1.empty()) continue;
        ++compared;
        const r::JobConfig& c = j.v1;
        for (size_t g = 0; g < d1.size(); ++g) {
            SCOPED_TRACE("rank " + std::to_string(g));
            EXPECT_EQ(d1[g].capacity_rows, d2[g].capacity_rows);
            EXPECT_EQ(d1[g].own_rows, d2[g].own_rows);
            EXPECT_EQ(d1[g].peer_rows, d2[g].peer_rows);
            EXPECT_EQ(d1[g].expand_x, d2[g].expand_x);
            EXPECT_EQ(d1[g].dynamic_scale_bytes, d2[g].dynamic_scale_bytes);
            ASSERT_EQ(d1[g].dynamic_scales.size(), d2[g].dynamic_scales.size());
            if (!d1[g].dynamic_scales.empty()) {
                EXPECT_EQ(0,
                          std::memcmp(d1[g].dynamic_scales.data(),
                                      d2[g].dynamic_scales.data(),
                                      d1[g].dynamic_scales.size() * sizeof(float)));
            }
            EXPECT_EQ(d1[g].ep_recv_counts, d2[g].ep_recv_counts);
            EXPECT_EQ(d1[g].expert_token_nums, d2[g].expert_token_nums);
            EXPECT_EQ(d1[g].tp_recv_counts, d2[g].tp_recv_counts);
            EXPECT_EQ(d1[g].expand_scales, d2[g].expand_scales);
            // assist: one triple per own row, zero past 3·ownRows (peer rows get none).
            ASSERT_EQ(d2[g].assist_info.size(), static_cast<size_t>(3 * d2[g].capacity_rows));
            for (size_t i = static_cast<size_t>(3 * d2[g].own_rows); i < d2[g].assist_info.size();
                 ++i)
                ASSERT_EQ(d2[g].assist_info[i], 0);
        }
        // Combine on random expert outputs (finite values of combine's dtype).
        std::vector<std::vector<uint16_t>> out(d1.size());
        for (size_t g = 0; g < d1.size(); ++g) {
            const size_t rows = static_cast<size_t>(c.tp_size * d1[g].capacity_rows);
            for (size_t i = 0; i < rows * static_cast<size_t>(c.hidden); ++i) {
                const float v = std::uniform_real_distribution<float>(-4.0f, 4.0f)(rng);
                out[g].push_back(c.combine_elem == Elem::kFloat16 ? r::f32_to_f16(v) : bf(v));
            }
        }
        const std::vector<std::vector<uint16_t>> x1 = r::combine(j.v1, j.in1, d1, out);
        const std::vector<v2::CombineOutput> x2 = v2::combine(j.cfg, j.in2, d2, out, &e2);
        ASSERT_EQ(x1.size(), x2.size()) << e2;
        for (size_t g = 0; g < x1.size(); ++g) {
            EXPECT_EQ(x1[g], x2[g].x) << "rank " << g;
            EXPECT_EQ(
                x2[g].active,
                std::vector<uint8_t>(
                    j.in1[g].num_tokens > 0 ? static_cast<size_t>(j.in1[g].num_tokens) : 0, 1));
        }
    }
    EXPECT_GT(compared, 200);
}

}  // namespace
