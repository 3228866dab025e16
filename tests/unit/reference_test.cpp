// Hand-computed checks of the naive reference (tests/reference). Each expected value is worked
// out in the comments from SPEC.md, not from the reference's code.
#include "reference.hpp"

#include <gtest/gtest.h>

#include "quant/row_kernels.hpp"

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "reference_test_support.hpp"

namespace {

using namespace reference_test;

// ------------------------------------------------------------------------------------------------
// Conversions
// ------------------------------------------------------------------------------------------------
TEST(ReferenceConvert, Fp16Boundaries) {
    EXPECT_EQ(r::f32_to_f16(65504.0f), 0x7BFF);  // largest finite
    EXPECT_EQ(r::f32_to_f16(65519.0f), 0x7BFF);  // below the midpoint 65520
    EXPECT_EQ(r::f32_to_f16(65520.0f), 0x7C00);  // midpoint 2047.5·32: tie to even 2048 -> Inf
    EXPECT_EQ(r::f32_to_f16(-65520.0f), 0xFC00);
    EXPECT_EQ(r::f32_to_f16(FLT_MAX), 0x7C00);
    EXPECT_EQ(r::f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);   // smallest subnormal
    EXPECT_EQ(r::f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);   // half of it: tie to even 0
    EXPECT_EQ(r::f32_to_f16(-std::ldexp(1.0f, -25)), 0x8000);  // keeps the sign
    EXPECT_EQ(r::f32_to_f16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);  // above half
    EXPECT_EQ(r::f32_to_f16(std::ldexp(1.5f, -24)), 0x0002);     // 1.5 quanta: tie -> 2
    EXPECT_EQ(r::f32_to_f16(std::ldexp(2.5f, -24)), 0x0002);     // 2.5 quanta: tie -> 2
    EXPECT_EQ(r::f32_to_f16(std::ldexp(1023.5f, -24)), 0x0400);  // between max subnormal and 2^-14
    EXPECT_EQ(r::f32_to_f16(std::ldexp(1.0f, -149)), 0x0000);    // fp32 subnormal underflows
    EXPECT_EQ(r::f32_to_f16(1.0f), 0x3C00);
    EXPECT_EQ(r::f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie, even mantissa 0
    EXPECT_EQ(r::f32_to_f16(1.0f + std::ldexp(3.0f, -11)), 0x3C02);  // tie between 1 and 2 -> 2
    EXPECT_EQ(r::f32_to_f16(-0.0f), 0x8000);
    EXPECT_EQ(r::f32_to_f16(std::numeric_limits<float>::infinity()), 0x7C00);
    EXPECT_EQ(r::f32_to_f16(float_of(0x7FC00000u)), 0x7E00);
    EXPECT_EQ(r::f32_to_f16(float_of(0xFFC00000u)), 0xFE00);  // NaN keeps its sign
    EXPECT_EQ(r::f32_to_f16(float_of(0x7F800001u)), 0x7E00);  // signalling NaN -> canonical
    EXPECT_EQ(r::f32_to_f16(float_of(0xFF812345u)), 0xFE00);

    EXPECT_EQ(r::f16_to_f32(0x0001), std::ldexp(1.0f, -24));
    EXPECT_EQ(r::f16_to_f32(0x03FF), std::ldexp(1023.0f, -24));
    EXPECT_EQ(r::f16_to_f32(0x0400), std::ldexp(1.0f, -14));
    EXPECT_EQ(r::f16_to_f32(0x7BFF), 65504.0f);
    EXPECT_EQ(r::f16_to_f32(0x3555), 0.333251953125f);  // 1.0101010101b · 2^-2
    EXPECT_EQ(r::f16_to_f32(0xC000), -2.0f);
    EXPECT_TRUE(std::signbit(r::f16_to_f32(0x8000)));
    EXPECT_EQ(r::f16_to_f32(0x7C00), std::numeric_limits<float>::infinity());
    EXPECT_TRUE(std::isnan(r::f16_to_f32(0xFE00)));
    EXPECT_TRUE(std::signbit(r::f16_to_f32(0xFE00)));
}

TEST(ReferenceConvert, Bf16Boundaries) {
    EXPECT_EQ(r::f32_to_bf16(1.0f), 0x3F80);
    EXPECT_EQ(r::f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);  // tie -> even
    EXPECT_EQ(r::f32_to_bf16(1.0f + std::ldexp(3.0f, -8)), 0x3F82);  // tie -> even (up)
    EXPECT_EQ(r::f32_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3F81);
    EXPECT_EQ(r::f32_to_bf16(float_of(0x7F7F8000u)), 0x7F80);  // midpoint above bf16 max: Inf
    EXPECT_EQ(r::f32_to_bf16(float_of(0x7F7F7FFFu)), 0x7F7F);
    EXPECT_EQ(r::f32_to_bf16(FLT_MAX), 0x7F80);
    EXPECT_EQ(r::f32_to_bf16(std::ldexp(1.0f, -133)), 0x0001);  // smallest bf16 subnormal
    EXPECT_EQ(r::f32_to_bf16(std::ldexp(1.0f, -134)), 0x0000);  // half of it: tie -> 0
    EXPECT_EQ(r::f32_to_bf16(std::ldexp(3.0f, -134)), 0x0002);  // 1.5 quanta -> 2
    EXPECT_EQ(r::f32_to_bf16(std::ldexp(1.0f, -126)), 0x0080);
    EXPECT_EQ(r::f32_to_bf16(-0.0f), 0x8000);
    EXPECT_EQ(r::f32_to_bf16(float_of(0xFFC00000u)), 0xFFC0);
    EXPECT_EQ(r::f32_to_bf16(float_of(0x7F800001u)), 0x7FC0);  // payload only in the low bits
    EXPECT_EQ(r::bf16_to_f32(0x0001), std::ldexp(1.0f, -133));
    EXPECT_EQ(r::bf16_to_f32(0xC040), -3.0f);
}

TEST(ReferenceConvert, ExhaustiveRoundTripAndMidpoints) {
    for (uint32_t b = 0; b <= 0xFFFFu; ++b) {
        const uint16_t h = static_cast<uint16_t>(b);
        const bool f16_nan = (h & 0x7C00) == 0x7C00 && (h & 0x03FF) != 0;
        const bool bf_nan = (h & 0x7F80) == 0x7F80 && (h & 0x007F) != 0;
        const uint16_t sign = static_cast<uint16_t>(h & 0x8000);
        ASSERT_EQ(r::f32_to_f16(r::f16_to_f32(h)), f16_nan ? (0x7E00 | sign) : h) << b;
        ASSERT_EQ(r::f32_to_bf16(r::bf16_to_f32(h)), bf_nan ? (0x7FC0 | sign) : h) << b;
    }
    // Exact midpoints between neighbours round to the even one; just off them, to the nearer one.
    for (uint16_t b = 0; b < 0x7BFF; ++b) {
        const double mid =
            (static_cast<double>(r::f16_to_f32(b)) + r::f16_to_f32(static_cast<uint16_t>(b + 1))) /
            2;
        const float m = static_cast<float>(mid);  // exact: 12 significant bits
        const uint16_t even = (b & 1) ? static_cast<uint16_t>(b + 1) : b;
        ASSERT_EQ(r::f32_to_f16(m), even) << b;
        ASSERT_EQ(r::f32_to_f16(std::nextafter(m, 0.0f)), b) << b;
        ASSERT_EQ(r::f32_to_f16(std::nextafter(m, 1e9f)), b + 1) << b;
    }
    for (uint32_t b = 0; b <= 0x7F7Fu; ++b) {
        const float m = float_of((b << 16) | 0x8000u);  // exact midpoint of b and b+1
        const uint16_t even = static_cast<uint16_t>((b & 1) ? b + 1 : b);
        ASSERT_EQ(r::f32_to_bf16(m), even) << b;
        ASSERT_EQ(r::f32_to_bf16(float_of((b << 16) | 0x7FFFu)), b) << b;
        ASSERT_EQ(r::f32_to_bf16(float_of((b << 16) | 0x8001u)), b + 1) << b;
    }
}

// ------------------------------------------------------------------------------------------------
// Dispatch
// ------------------------------------------------------------------------------------------------

TEST(ReferenceDispatch, TinyPlacementAndCounts) {
    std::string err;
    const auto out = r::dispatch(tiny_cfg(), tiny_ranks(), &err);
    ASSERT_EQ(out.size(), 2u) << err;
    const Elem bf = Elem::kBFloat16;
    for (const auto& o : out) {
        EXPECT_EQ(o.capacity_rows, 4);
        EXPECT_EQ(o.own_rows, 4);
        EXPECT_EQ(o.peer_rows, 0);
        ASSERT_EQ(o.expand_x.size(), 4u * 3u * 2u);
    }
    const float e0[4] = {4, 7, 10, 10}, e1[4] = {1, 1, 4, 7};
    for (int i = 0; i < 4; ++i) {
        EXPECT_EQ(x16(bf, out[0], i, 3, 0), e0[i]) << i;
        EXPECT_EQ(x16(bf, out[0], i, 3, 2), e0[i] + 2) << i;
        EXPECT_EQ(x16(bf, out[1], i, 3, 0), e1[i]) << i;
    }
    // expandIdx: rank 0 flattened ids [1,1,0,1] -> occurrences [0,1,0,2]; rank 1 [1,0,0,0] ->
    // [0,0,1,2].
    EXPECT_EQ(out[0].expand_idx, (std::vector<int32_t>{0, 1, 0, 2}));
    EXPECT_EQ(out[1].expand_idx, (std::vector<int32_t>{0, 0, 1, 2}));
    // epRecvCounts (index e·W+src, inclusive): rank 0 gets 1 from src0, 3 from src1 -> [1,4];
    // rank 1 gets 3 then 1 -> [3,4].
    EXPECT_EQ(out[0].ep_recv_counts, (std::vector<int32_t>{1, 4}));
    EXPECT_EQ(out[1].ep_recv_counts, (std::vector<int32_t>{3, 4}));
    EXPECT_EQ(out[0].expert_token_nums, (std::vector<int64_t>{4}));
    EXPECT_TRUE(out[0].tp_recv_counts.empty());
    EXPECT_TRUE(out[0].dynamic_scales.empty());
    // expandScales: the expertScales of each row's entry.
    EXPECT_EQ(out[0].expand_scales, (std::vector<float>{0.125f, 3, 4, 5}));
    EXPECT_EQ(out[1].expand_scales, (std::vector<float>{0.5f, 0.25f, 1, 2}));
}

TEST(ReferenceDispatch, ExpertsPerRankTwoTokenNums) {
    // W=2, S=0, E=4 (L=2), K=2, H=3, BS=1. rank0 ids [0,1], rank1 ids [1,1].
    // Rank 0: expert0 <- src0 (1 row); expert1 <- src0 (1), src1 (2). Counts over e·W+src:
    // [1,0,1,2] -> running [1,1,2,4]; type 0 prefix [1,4]; type 1 counts [1,3]. Rank 1 gets
    // nothing.
    r::JobConfig c = tiny_cfg();
    c.moe_expert_num = 4;
    c.has_expert_scales = false;
    const std::vector<r::RankInput> in = {make_rank(Elem::kBFloat16, 1, {1, 2, 3}, {0, 1}, {}),
                                          make_rank(Elem::kBFloat16, 1, {4, 5, 6}, {1, 1}, {})};
    std::string err;
    auto out = r::dispatch(c, in, &err);
    ASSERT_EQ(out.size(), 2u) << err;
    EXPECT_EQ(out[0].capacity_rows, 4);  // 1·2·min(2,2)
    EXPECT_EQ(out[0].ep_recv_counts, (std::vector<int32_t>{1, 1, 2, 4}));
    EXPECT_EQ(out[0].expert_token_nums, (std::vector<int64_t>{1, 4}));
    EXPECT_EQ(out[1].ep_recv_counts, (std::vector<int32_t>{0, 0, 0, 0}));
    EXPECT_EQ(out[1].expert_token_nums, (std::vector<int64_t>{0, 0}));
    EXPECT_EQ(out[1].expand_idx, (std::vector<int32_t>{0, 1}));
    const float first[4] = {1, 1, 4, 4};  // e0: src0 t0 | e1: src0 t0, src1 (t0,k0), (t0,k1)
    for (int i = 0; i < 4; ++i) EXPECT_EQ(x16(Elem::kBFloat16, out[0], i, 3, 0), first[i]) << i;
    EXPECT_TRUE(out[0].expand_scales.empty());
    c.expert_token_nums_type = 1;
    out = r::dispatch(c, in, &err);
    ASSERT_EQ(out.size(), 2u) << err;
    EXPECT_EQ(out[0].expert_token_nums, (std::vector<int64_t>{1, 3}));
}

TEST(ReferenceDispatch, RunTimeErrorsNameTheRank) {
    std::string err;
    auto in = tiny_ranks();
    in[1].expert_ids = {0, 0, 0, 0};  // expert 0 gets 1 + 4 = 5 rows > A = 4 on rank 0
    EXPECT_TRUE(r::dispatch(tiny_cfg(), in, &err).empty());
    EXPECT_NE(err.find("rank 0"), std::string::npos) << err;
    EXPECT_NE(err.find("got 5"), std::string::npos) << err;
    // globalBs = 6 -> maxBs = 3 -> A = 3·2·1 = 6: the same routing now fits.
    r::JobConfig c = tiny_cfg();
    c.global_bs = 6;
    const auto ok = r::dispatch(c, in, &err);
    ASSERT_EQ(ok.size(), 2u) << err;
    EXPECT_EQ(ok[0].capacity_rows, 6);
    EXPECT_EQ(ok[0].own_rows, 5);
    EXPECT_EQ(ok[0].expand_x.size(), 6u * 3u * 2u);
    EXPECT_EQ(ok[0].expand_scales.size(), 6u);
    EXPECT_EQ(ok[0].expand_scales[5], 0.0f);  // past the own rows
    EXPECT_EQ(x16(Elem::kBFloat16, ok[0], 5, 3, 1), 0.0f);

    in = tiny_ranks();
    in[1].expert_ids[2] = 2;  // E = 2
    err.clear();
    EXPECT_TRUE(r::dispatch(tiny_cfg(), in, &err).empty());
    EXPECT_NE(err.find("rank 1"), std::string::npos) << err;
    in[1].expert_ids[2] = -1;
    err.clear();
    EXPECT_TRUE(r::dispatch(tiny_cfg(), in, &err).empty());
    EXPECT_NE(err.find("rank 1"), std::string::npos) << err;
}

// W=4, S=2 (shared ranks 0,1), E=2 (L=1, experts on ranks 2,3), K=1, H=3, BS=3, fp16.
// Token t of rank r: x = [10r+t, -(10r+t), 0.5].
// Chunk rule (BS=3, S=2): rank 2: base ⌊2·3/2⌋=3; s0 [⌊6/2⌋-3, ⌊9/2⌋-3) = [0,1), s1 [1,3).
//                         rank 3: base ⌊9/2⌋=4;  s0 [0, ⌊12/2⌋-4) = [0,2), s1 [2, ⌊15/2⌋-4) =
//                         [2,3).
// Shared rank 0 rows: own t0..t2, rank2 t0, rank3 t0,t1 -> 0,1,2,20,30,31; epRecvCounts [3,3,4,6].
// Shared rank 1 rows: own, rank2 t1,t2, rank3 t2      -> 10,11,12,21,22,32; epRecvCounts [0,3,5,6].
// ids: rank0 [0,1,0], rank1 [1,1,0], rank2 [0,0,1], rank3 [1,0,0].
// Expert 0 (rank 2): 0,2 | 12 | 20,21 | 31,32 -> epRecvCounts [2,3,5,7].
// Expert 1 (rank 3): 1 | 10,11 | 22 | 30     -> epRecvCounts [1,3,4,5].
r::JobConfig shared_cfg() {
    r::JobConfig c;
    c.ep_world_size = 4;
    c.shared_rank_num = 2;
    c.moe_expert_num = 2;
    c.top_k = 1;
    c.hidden = 3;
    c.x_elem = Elem::kFloat16;
    c.expand_elem = Elem::kFloat16;
    c.combine_elem = Elem::kFloat16;
    c.has_expert_scales = true;
    return c;
}
std::vector<r::RankInput> shared_ranks() {
    const std::vector<std::vector<int32_t>> ids = {{0, 1, 0}, {1, 1, 0}, {0, 0, 1}, {1, 0, 0}};
    std::vector<r::RankInput> in;
    for (int rk = 0; rk < 4; ++rk) {
        std::vector<float> x;
        for (int t = 0; t < 3; ++t) {
            const float v = static_cast<float>(10 * rk + t);
            x.insert(x.end(), {v, -v, 0.5f});
        }
        in.push_back(make_rank(Elem::kFloat16, 3, x, ids[static_cast<size_t>(rk)], {1, 1, 1}));
    }
    return in;
}

TEST(ReferenceDispatch, SharedChunkRuleTwoSharedRanks) {
    std::string err;
    const auto out = r::dispatch(shared_cfg(), shared_ranks(), &err);
    ASSERT_EQ(out.size(), 4u) << err;
    const Elem h = Elem::kFloat16;
    EXPECT_EQ(out[0].capacity_rows, 6);   // ⌈3·4/2⌉
    EXPECT_EQ(out[2].capacity_rows, 12);  // 3·4·min(1,1)
    const std::vector<std::vector<float>> first = {{0, 1, 2, 20, 30, 31},
                                                   {10, 11, 12, 21, 22, 32},
                                                   {0, 2, 12, 20, 21, 31, 32},
                                                   {1, 10, 11, 22, 30}};
    for (size_t g = 0; g < 4; ++g) {
        ASSERT_EQ(out[g].own_rows, static_cast<int64_t>(first[g].size())) << g;
        for (size_t i = 0; i < first[g].size(); ++i) {
            EXPECT_EQ(x16(h, out[g], static_cast<int64_t>(i), 3, 0), first[g][i]) << g << "," << i;
            EXPECT_EQ(x16(h, out[g], static_cast<int64_t>(i), 3, 1), -first[g][i]) << g << "," << i;
        }
    }
    EXPECT_EQ(x16(h, out[3], 5, 3, 2), 0.0f);  // past the real rows
    EXPECT_EQ(out[0].ep_recv_counts, (std::vector<int32_t>{3, 3, 4, 6}));
    EXPECT_EQ(out[1].ep_recv_counts, (std::vector<int32_t>{0, 3, 5, 6}));
    EXPECT_EQ(out[2].ep_recv_counts, (std::vector<int32_t>{2, 3, 5, 7}));
    EXPECT_EQ(out[3].ep_recv_counts, (std::vector<int32_t>{1, 3, 4, 5}));
    EXPECT_EQ(out[0].expert_token_nums, (std::vector<int64_t>{6}));
    EXPECT_EQ(out[2].expert_token_nums, (std::vector<int64_t>{7}));
    EXPECT_EQ(out[0].expand_scales, (std::vector<float>(6, 1.0f)));  // shared rows: 1.0
    // expandIdx counts MoE entries only: rank 1 ids [1,1,0] -> [0,1,0].
    EXPECT_EQ(out[1].expand_idx, (std::vector<int32_t>{0, 1, 0}));
}

// W=2, T=2, S=0, E=2 (L=1), K=1, H=3, BS=1, bf16. Global g = ep·2 + tp.
// x_g = [10g+1, 10g+2, 10g+3]; ids g0 [0], g1 [0], g2 [0], g3 [1]; A = 1·2·1 = 2, T·A = 4 rows.
// EP group tp0 = {g0, g2}: g0 (expert 0) own rows g0.t0, g2.t0; g2 nothing.
// EP group tp1 = {g1, g3}: g1 own g1.t0; g3 own g3.t0.
// g0: [g0, g2 | g1 | 0]  g1: [g1 | g0, g2 | 0]  g2: [ | g3 | 0 0 0]  g3: [g3 | | 0 0 0].
r::JobConfig tp_cfg() {
    r::JobConfig c;
    c.ep_world_size = 2;
    c.tp_size = 2;
    c.moe_expert_num = 2;
    c.top_k = 1;
    c.hidden = 3;
    c.x_elem = Elem::kBFloat16;
    return c;
}
std::vector<r::RankInput> tp_ranks() {
    const int32_t ids[4] = {0, 0, 0, 1};
    const float es[4] = {2.0f, 0.5f, 1.0f, 0.25f};
    std::vector<r::RankInput> in;
    for (int g = 0; g < 4; ++g) {
        const float b = static_cast<float>(10 * g);
        in.push_back(make_rank(Elem::kBFloat16, 1, {b + 1, b + 2, b + 3}, {ids[g]}, {es[g]}));
    }
    return in;
}

TEST(ReferenceDispatch, TpTwoOwnThenPeer) {
    std::string err;
    const auto out = r::dispatch(tp_cfg(), tp_ranks(), &err);
    ASSERT_EQ(out.size(), 4u) << err;
    const std::vector<std::vector<float>> first = {
        {1, 21, 11, 0}, {11, 1, 21, 0}, {31, 0, 0, 0}, {31, 0, 0, 0}};
    for (size_t g = 0; g < 4; ++g) {
        ASSERT_EQ(out[g].expand_x.size(), 4u * 3u * 2u);
        for (int i = 0; i < 4; ++i)
            EXPECT_EQ(x16(Elem::kBFloat16, out[g], i, 3, 0), first[g][static_cast<size_t>(i)])
                << g << "," << i;
    }
    EXPECT_EQ(out[0].own_rows, 2);
    EXPECT_EQ(out[0].peer_rows, 1);
    EXPECT_EQ(out[2].own_rows, 0);
    EXPECT_EQ(out[2].peer_rows, 1);
    // tpRecvCounts: [tp] = own, [1-tp] = peer.
    EXPECT_EQ(out[0].tp_recv_counts, (std::vector<int32_t>{2, 1}));
    EXPECT_EQ(out[1].tp_recv_counts, (std::vector<int32_t>{2, 1}));  // tp1: [0]=peer 2, [1]=own 1
    EXPECT_EQ(out[2].tp_recv_counts, (std::vector<int32_t>{0, 1}));
    EXPECT_EQ(out[3].tp_recv_counts, (std::vector<int32_t>{0, 1}));  // tp1: [0]=peer 0, [1]=own 1
    // epRecvCounts: own running totals, then the peer's verbatim.
    EXPECT_EQ(out[0].ep_recv_counts, (std::vector<int32_t>{1, 2, 1, 1}));
    EXPECT_EQ(out[1].ep_recv_counts, (std::vector<int32_t>{1, 1, 1, 2}));
    EXPECT_EQ(out[2].ep_recv_counts, (std::vector<int32_t>{0, 0, 0, 1}));
    EXPECT_EQ(out[3].ep_recv_counts, (std::vector<int32_t>{0, 1, 0, 0}));
    // expertTokenNums (L == 1): all rows including the peer's.
    EXPECT_EQ(out[0].expert_token_nums, (std::vector<int64_t>{3}));
    EXPECT_EQ(out[2].expert_token_nums, (std::vector<int64_t>{1}));
}

// Mode 2 int8, W=2, S=0, E=2, K=2, H=4, BS=2, bf16, smooth scales.
//   rank0 smooth: e0 [1,1,1,1], e1 [2,0.5,1,1]; rank1 smooth: all ones.
//   rank0 t0 [1,-2,0.5,4] ids [0,1]; t1 [0,-0,0,0] ids [1,1];
//   rank1 t0 [Inf,1,1,1] ids [0,0]; t1 [2^-133,0,0,0] ids [1,0].
// To e0 with smooth e0: y=[1,-2,0.5,4], m=4, ds=127/4=31.75, y·ds=[31.75,-63.5,15.875,127]
//   -> q=[32,-64(tie, even),16,127], scale=1/31.75=4/127.
// To e1 with smooth e1: y=[2,-1,0.5,4] -> y·ds=[63.5,-31.75,15.875,127] -> q=[64,-32,16,127].
// Zero row: q=0, scale +0. Inf row: q=0, scale 0x7FC00000. 2^-133 row: 127/2^-133 overflows
// -> ds=+Inf -> q=0, scale 0x7FC00000.
// Expert 0 (rank 0) rows: src0 t0k0 | src1 t0k0, t0k1, t1k1.
// Expert 1 (rank 1) rows: src0 t0k1, t1k0, t1k1 | src1 t1k0.
TEST(ReferenceDispatch, DynamicInt8Quantization) {
    r::JobConfig c = tiny_cfg();
    c.hidden = 4;
    c.quant_mode = 2;
    c.expand_elem = Elem::kInt8;
    c.has_smooth_scales = true;
    c.has_expert_scales = false;
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<r::RankInput> in = {
        make_rank(Elem::kBFloat16, 2, {1, -2, 0.5f, 4, 0, -0.0f, 0, 0}, {0, 1, 1, 1}, {}),
        make_rank(
            Elem::kBFloat16, 2, {inf, 1, 1, 1, std::ldexp(1.0f, -133), 0, 0, 0}, {0, 0, 1, 0}, {})};
    in[0].scales = {1, 1, 1, 1, 2, 0.5f, 1, 1};
    in[1].scales = std::vector<float>(8, 1.0f);
    std::string err;
    const auto out = r::dispatch(c, in, &err);
    ASSERT_EQ(out.size(), 2u) << err;
    ASSERT_EQ(out[0].expand_x.size(), 4u * 4u);  // int8
    ASSERT_EQ(out[0].dynamic_scales.size(), 4u);
    const int e0q[4] = {32, -64, 16, 127}, e1q[4] = {64, -32, 16, 127};
    for (int j = 0; j < 4; ++j) {
        EXPECT_EQ(q8(out[0], 0, 4, j), e0q[j]) << j;
        EXPECT_EQ(q8(out[1], 0, 4, j), e1q[j]) << j;
        for (int row = 1; row < 4; ++row) {
            EXPECT_EQ(q8(out[0], row, 4, j), 0) << row;
            EXPECT_EQ(q8(out[1], row, 4, j), 0) << row;
        }
    }
    EXPECT_EQ(out[0].dynamic_scales[0], 4.0f / 127.0f);
    EXPECT_EQ(out[1].dynamic_scales[0], 4.0f / 127.0f);
    for (int row = 1; row < 4; ++row)
        EXPECT_EQ(bits_of(out[0].dynamic_scales[static_cast<size_t>(row)]), 0x7FC00000u) << row;
    EXPECT_EQ(bits_of(out[1].dynamic_scales[1]), 0u);  // m = 0: +0
    EXPECT_EQ(bits_of(out[1].dynamic_scales[2]), 0u);
    EXPECT_EQ(bits_of(out[1].dynamic_scales[3]), 0x7FC00000u);
}

// W=2, S=1, E=1 (expert 0 on rank 1), K=1, H=3, BS=1, bf16, mode 2, smooth (E+1=2 rows).
//   rank0 (shared) x=[1,1,1], smooth row0 [1,1,1], row1 [2,2,2];
//   rank1 (MoE)    x=[1,2,4], smooth row0 [4,1,1], row1 [1,1,0.5].
// Shared rank 0 rows: own t0 with rank0 row0: y=[1,1,1], ds=127 -> [127,127,127], 1/127;
//   rank1 t0 with rank1 row0: y=[4,2,4], ds=31.75 -> [127,64(63.5 tie),127], 4/127.
// MoE rank 1 rows: src0 with rank0 row1 (=0+1): y=[2,2,2], ds=63.5 -> [127,127,127], 2/127;
//   src1 with rank1 row1: y=[1,2,2], ds=63.5 -> [64(63.5),127,127], 2/127.
TEST(ReferenceDispatch, SmoothRowsPerDestinationWithSharedExpert) {
    r::JobConfig c;
    c.ep_world_size = 2;
    c.shared_rank_num = 1;
    c.moe_expert_num = 1;
    c.top_k = 1;
    c.hidden = 3;
    c.quant_mode = 2;
    c.expand_elem = Elem::kInt8;
    c.has_smooth_scales = true;
    c.x_elem = Elem::kBFloat16;
    std::vector<r::RankInput> in = {make_rank(Elem::kBFloat16, 1, {1, 1, 1}, {0}, {1}),
                                    make_rank(Elem::kBFloat16, 1, {1, 2, 4}, {0}, {1})};
    in[0].scales = {1, 1, 1, 2, 2, 2};
    in[1].scales = {4, 1, 1, 1, 1, 0.5f};
    std::string err;
    const auto out = r::dispatch(c, in, &err);
    ASSERT_EQ(out.size(), 2u) << err;
    EXPECT_EQ(out[0].capacity_rows, 2);  // ⌈1·2/1⌉
    EXPECT_EQ(out[1].capacity_rows, 2);  // 1·2·1
    const int want[2][2][3] = {{{127, 127, 127}, {127, 64, 127}},
                               {{127, 127, 127}, {64, 127, 127}}};
    for (size_t g = 0; g < 2; ++g)
        for (int row = 0; row < 2; ++row)
            for (int j = 0; j < 3; ++j)
                EXPECT_EQ(q8(out[g], row, 3, j), want[g][row][j]) << g << row << j;
    EXPECT_EQ(out[0].dynamic_scales, (std::vector<float>{1.0f / 127.0f, 4.0f / 127.0f}));
    EXPECT_EQ(out[1].dynamic_scales, (std::vector<float>{2.0f / 127.0f, 2.0f / 127.0f}));
    EXPECT_EQ(out[0].ep_recv_counts, (std::vector<int32_t>{1, 2}));
    EXPECT_EQ(out[1].ep_recv_counts, (std::vector<int32_t>{1, 2}));
}

// ------------------------------------------------------------------------------------------------
// Combine
// ------------------------------------------------------------------------------------------------
// Applies expert f_d (on receiving rank d) to every real row of a 16-bit dispatch output.
template <class F>
std::vector<std::vector<uint16_t>> run_experts(Elem el,
                                               int h,
                                               const std::vector<r::DispatchOutput>& out,
                                               F f) {
    std::vector<std::vector<uint16_t>> eo;
    for (size_t g = 0; g < out.size(); ++g) {
        const int64_t rows = static_cast<int64_t>(out[g].expand_x.size()) / (2 * h);
        std::vector<uint16_t> v(static_cast<size_t>(rows * h),
                                enc(el, 1000.0f));  // garbage past rows
        for (int64_t i = 0; i < out[g].own_rows + out[g].peer_rows; ++i)
            for (int j = 0; j < h; ++j)
                v[static_cast<size_t>(i * h + j)] =
                    enc(el, f(static_cast<int>(g), j, x16(el, out[g], i, h, j)));
        eo.push_back(v);
    }
    return eo;
}

TEST(ReferenceCombine, TinyWeightedSum) {
    // Expert on rank d multiplies by d+1. rank0 t0 [1,2,3] ids [1,1] scales [.5,.25]:
    // 2·[1,2,3]·0.75 = [1.5,3,4.5]. t1 [4,5,6] ids [0,1] scales [.125,1]:
    // [0.5,0.625,0.75]+[8,10,12]. rank1 t0 [7,8,9] ids [1,0] scales [2,3]: [28,32,36]+[21,24,27].
    // t1 ids [0,0] scales [4,5]: 9·x.
    const Elem bf = Elem::kBFloat16;
    std::string err;
    const auto in = tiny_ranks();
    const auto out = r::dispatch(tiny_cfg(), in, &err);
    ASSERT_EQ(out.size(), 2u) << err;
    const auto eo =
        run_experts(bf, 3, out, [](int g, int, float v) { return v * static_cast<float>(g + 1); });
    const auto x = r::combine(tiny_cfg(), in, out, eo);
    ASSERT_EQ(x.size(), 2u);
    const std::vector<std::vector<float>> want = {{1.5f, 3, 4.5f, 8.5f, 10.625f, 12.75f},
                                                  {49, 56, 63, 90, 99, 108}};
    for (size_t g = 0; g < 2; ++g) {
        ASSERT_EQ(x[g].size(), 6u);
        for (size_t i = 0; i < 6; ++i) EXPECT_EQ(dec(bf, x[g][i]), want[g][i]) << g << "," << i;
    }
}

TEST(ReferenceCombine, SharedRowsComeBackFromTheirChunk) {
    // Expert on rank d adds 100·(d+1) to element 0. Element 0 of token t of rank r is
    // (10r+t + 100(de+1)) + (10r+t + 100(ds+1)), de = expert rank, ds = shared rank of the token
    // (chunk rule above; a shared rank's own tokens stay on itself). Element 1 -> -2(10r+t), 2
    // -> 1. rank0 ids [0,1,0] ds 0: 300+100, 401+101, 302+102. rank1 ids [1,1,0] ds 1: 410+210,
    // 411+211, 312+212. rank2 ids [0,0,1] ds 0,1,1: 320+120, 321+221, 422+222. rank3 ids [1,0,0] ds
    // 0,0,1: 430+130, 331+131, 332+232.
    const Elem h = Elem::kFloat16;
    std::string err;
    const auto in = shared_ranks();
    const auto out = r::dispatch(shared_cfg(), in, &err);
    ASSERT_EQ(out.size(), 4u) << err;
    const auto eo = run_experts(h, 3, out, [](int g, int j, float v) {
        return j == 0 ? v + 100.0f * static_cast<float>(g + 1) : v;
    });
    const auto x = r::combine(shared_cfg(), in, out, eo);
    ASSERT_EQ(x.size(), 4u);
    const float want0[4][3] = {{400, 502, 404}, {620, 622, 524}, {440, 542, 644}, {560, 462, 564}};
    for (size_t g = 0; g < 4; ++g) {
        ASSERT_EQ(x[g].size(), 9u);
        for (size_t t = 0; t < 3; ++t) {
            EXPECT_EQ(dec(h, x[g][t * 3]), want0[g][t]) << g << "," << t;
            EXPECT_EQ(dec(h, x[g][t * 3 + 1]), -2.0f * static_cast<float>(10 * g + t))
                << g << "," << t;
            EXPECT_EQ(dec(h, x[g][t * 3 + 2]), 1.0f) << g << "," << t;
        }
    }
}

TEST(ReferenceCombine, TpTwoAddsPeerPartialRoundedToDtype) {
    // Expert outputs (all elements of a row equal; rows past own+peer hold 1000):
    //   g0 rows [1.0, 3.0 | -4.0]      g1 rows [10 | 2^-8, 0.5]   g2 rows [ | 1.0]   g3 rows [7 |
    //   ].
    // TP-combined own rows: g0 r0 = 1 + 2^-8 -> bf16 tie -> 1.0; g0 r1 = 3 + 0.5 = 3.5;
    //   g1 r0 = 10 + (-4) = 6; g3 r0 = 7 + 1 = 8.
    // Tokens: g0 t0 <- g0 r0 ·2 = 2.0 (2.0078125 if the TP sum were not rounded to bf16);
    //   g2 t0 <- g0 r1 ·1 = 3.5; g1 t0 <- g1 r0 ·0.5 = 3; g3 t0 <- g3 r0 ·0.25 = 2.
    const Elem bf = Elem::kBFloat16;
    std::string err;
    const auto in = tp_ranks();
    const auto out = r::dispatch(tp_cfg(), in, &err);
    ASSERT_EQ(out.size(), 4u) << err;
    const std::vector<std::vector<float>> rows = {{1.0f, 3.0f, -4.0f, 1000},
                                                  {10, std::ldexp(1.0f, -8), 0.5f, 1000},
                                                  {1.0f, 1000, 1000, 1000},
                                                  {7, 1000, 1000, 1000}};
    std::vector<std::vector<uint16_t>> eo(4);
    for (size_t g = 0; g < 4; ++g)
        for (float v : rows[g]) eo[g].insert(eo[g].end(), 3, enc(bf, v));
    const auto x = r::combine(tp_cfg(), in, out, eo);
    ASSERT_EQ(x.size(), 4u);
    const float want[4] = {2.0f, 3.0f, 3.5f, 2.0f};
    for (size_t g = 0; g < 4; ++g) {
        ASSERT_EQ(x[g].size(), 3u);
        for (size_t j = 0; j < 3; ++j) EXPECT_EQ(dec(bf, x[g][j]), want[g]) << g << "," << j;
    }
}

TEST(ReferenceCombine, CommQuantInt8RoundTrip) {
    // W=1, E=1, K=1, BS=1, H=10, fp16; the expert returns v below, expertScales [1].
    // fl32(1/127) = (1 - 2^-28)/127 (bits past 2^-23 relative are 2^-5 ulp: rounds down), so
    // block 0 (8 elems) m=127: s32 = fl32(1 - 2^-28) = 1.0; q = rne(v) =
    // [127,64,1,-1,0,0,100,-127]. Tail block (H mod 8 = 2) m=254: s32 = fl32(2 - 2^-27) = 2.0; q =
    // [-127, rne(1.5)=2] -> [-254, 4]. (One block over the whole row would give s32=2 and 63.5/2 ->
    // 32 -> 64: same, but 1 -> 0.)
    r::JobConfig c;
    c.ep_world_size = 1;
    c.moe_expert_num = 1;
    c.top_k = 1;
    c.hidden = 10;
    c.x_elem = Elem::kFloat16;
    c.expand_elem = Elem::kFloat16;
    c.combine_elem = Elem::kFloat16;
    const Elem h = Elem::kFloat16;
    const std::vector<float> v = {127, 63.5f, 1, -1, 0.25f, 0, 100, -127, -254, 3};
    const std::vector<r::RankInput> in = {
        make_rank(h, 1, std::vector<float>(10, 1.0f), {0}, {1.0f})};
    std::string err;
    const auto out = r::dispatch(c, in, &err);
    ASSERT_EQ(out.size(), 1u) << err;
    std::vector<std::vector<uint16_t>> eo(1);
    for (float f : v) eo[0].push_back(enc(h, f));
    auto x = r::combine(c, in, out, eo);
    ASSERT_EQ(x.size(), 1u);
    for (size_t j = 0; j < 10; ++j) EXPECT_EQ(dec(h, x[0][j]), v[j]) << j;  // mode 0: exact
    c.comm_quant_mode = 2;
    x = r::combine(c, in, out, eo);
    ASSERT_EQ(x.size(), 1u);
    const std::vector<float> want = {127, 64, 1, -1, 0, 0, 100, -127, -254, 4};
    for (size_t j = 0; j < 10; ++j) EXPECT_EQ(dec(h, x[0][j]), want[j]) << j;
    EXPECT_EQ(x[0][4], 0x0000);  // +0, not -0
}

// commQuantMode 2 rounds v/s32 twice, to fp16 and then to an integer: m = 128.5 gives
// s32 = fl32(128.5 · fl32(1/127)) and v = 102.6875 a quotient of 101.4888…, which fp16 makes 101.5
// and the integer rounding 102 (one rounding would give 101). Both the reference and the kernel.
TEST(ReferenceCombine, CommQuantRoundsTwiceFirstToFp16) {
    const float inv127 = 1.0f / 127.0f;
    const float s32 = 128.5f * inv127;
    const float quotient = 102.6875f / s32;
    ASSERT_GT(quotient, 101.46875f);
    ASSERT_LT(quotient, 101.5f);
    const float scale = r::f16_to_f32(r::f32_to_f16(s32));
    const uint16_t want = r::f32_to_f16(102.0f * scale);
    ASSERT_NE(want, r::f32_to_f16(101.0f * scale));
    r::JobConfig c;
    c.ep_world_size = 1;
    c.moe_expert_num = 1;
    c.top_k = 1;
    c.hidden = 2;
    c.x_elem = c.expand_elem = c.combine_elem = Elem::kFloat16;
    c.comm_quant_mode = 2;
    const std::vector<r::RankInput> in = {make_rank(Elem::kFloat16, 1, {1.0f, 1.0f}, {0}, {1.0f})};
    std::string err;
    const auto out = r::dispatch(c, in, &err);
    ASSERT_EQ(out.size(), 1u) << err;
    std::vector<std::vector<uint16_t>> eo = {{r::f32_to_f16(128.5f), r::f32_to_f16(102.6875f)}};
    const auto x = r::combine(c, in, out, eo);
    ASSERT_EQ(x.size(), 1u);
    EXPECT_EQ(x[0][1], want);
    float row[2] = {128.5f, 102.6875f};
    moedist::quant::comm_quant_round_trip(moedist::DType::kFloat16, row, 2);
    EXPECT_EQ(r::f32_to_f16(row[1]), want);
}

}  // namespace
