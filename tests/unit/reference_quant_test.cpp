// Hand-computed checks of the naive reference's quantization modes (SPEC §5). Each expected
// value is worked out in the comments from SPEC.md, not from the reference's code.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "reference.hpp"
#include "reference_test_support.hpp"

namespace {

using namespace reference_test;
// ------------------------------------------------------------------------------------------------
// Quantization modes of SPEC §5 (8-bit targets, pre-quantized x, static, per-group, MX)
// ------------------------------------------------------------------------------------------------
// Byte j of 8-bit row `row` of expand_x.
int b8(const r::DispatchOutput& o, int64_t row, int h, int j) {
    return o.expand_x[static_cast<size_t>(row) * static_cast<size_t>(h) + static_cast<size_t>(j)];
}
// The exact bits of dynamic_scales[i] (memcpy: no float copy in between).
uint32_t scale_bits(const r::DispatchOutput& o, size_t i) {
    uint32_t b = 0;
    std::memcpy(&b, o.dynamic_scales.data() + i, sizeof b);
    return b;
}
// A W=1, E=1, K=1 job: every token goes to the one expert, rows in token order, A = maxBs.
r::JobConfig one_rank_cfg(int h, int mode, Elem x, Elem expand, int64_t global_bs) {
    r::JobConfig c;
    c.ep_world_size = 1;
    c.moe_expert_num = 1;
    c.top_k = 1;
    c.hidden = h;
    c.global_bs = global_bs;
    c.quant_mode = mode;
    c.x_elem = x;
    c.expand_elem = expand;
    return c;
}
// Rank input of such a job from 16-bit values, token by token.
std::vector<r::RankInput> one_rank(Elem el, int64_t bs, const std::vector<float>& x) {
    return {make_rank(el, bs, x, std::vector<int32_t>(static_cast<size_t>(bs), 0), {})};
}
bool rejected(const r::JobConfig& c, const std::vector<r::RankInput>& in) {
    std::string err;
    const bool empty = r::dispatch(c, in, &err).empty();
    return empty && !err.empty();
}

// Pre-quantized x (mode 0, x fp8 / hifloat8): rows are byte copies, dynamicScales the row's token
// scale with its exact bits. Tiny layout (W=2, E=2, K=2, H=3, BS=2) with globalBs = 6 -> A = 6:
//   rank 0 rows (expert 0): r0t1, r1t0, r1t1, r1t1, then 2 zero rows;
//   rank 1 rows (expert 1): r0t0, r0t0, r0t1, r1t0, then 2 zero rows.
// Bytes include NaN / Inf / negative-zero codes: a copy never canonicalizes them.
// Token scales: r0 [0.5 = 0x3F000000, signalling -NaN 0xFF800001], r1 [-0 = 0x80000000, 2^-149 =
// 1].
TEST(ReferenceQuant, PreQuantizedCopyWithScales) {
    const std::vector<std::vector<uint8_t>> tok = {
        {0x01, 0x7F, 0xFF}, {0x80, 0x42, 0x6F}, {0x10, 0x20, 0x30}, {0xFE, 0x00, 0x7E}};
    const uint32_t sb[2][2] = {{0x3F000000u, 0xFF800001u}, {0x80000000u, 0x00000001u}};
    std::vector<r::RankInput> in = tiny_ranks();
    for (size_t g = 0; g < 2; ++g) {
        in[g].x.clear();
        in[g].x8 = tok[2 * g];
        in[g].x8.insert(in[g].x8.end(), tok[2 * g + 1].begin(), tok[2 * g + 1].end());
        in[g].x_scales.resize(2);
        std::memcpy(in[g].x_scales.data(), sb[g], sizeof sb[g]);
    }
    const size_t want_tok[2][4] = {{1, 2, 3, 3}, {0, 0, 1, 2}};  // index into tok (2·rank + t)
    const uint32_t want_scale[2][4] = {{0xFF800001u, 0x80000000u, 1u, 1u},
                                       {0x3F000000u, 0x3F000000u, 0xFF800001u, 0x80000000u}};
    for (Elem el : {Elem::kFp8E4M3, Elem::kFp8E5M2, Elem::kHiFloat8}) {
        r::JobConfig c = tiny_cfg();
        c.global_bs = 6;
        c.x_elem = el;
        c.expand_elem = el;
        std::string err;
        const auto out = r::dispatch(c, in, &err);
        ASSERT_EQ(out.size(), 2u) << err;
        for (size_t g = 0; g < 2; ++g) {
            ASSERT_EQ(out[g].capacity_rows, 6);
            ASSERT_EQ(out[g].expand_x.size(), 6u * 3u);  // 1 byte per element
            ASSERT_EQ(out[g].dynamic_scales.size(), 6u);
            EXPECT_TRUE(out[g].dynamic_scale_bytes.empty());
            for (int row = 0; row < 6; ++row) {
                for (int j = 0; j < 3; ++j) {
                    const int want = row < 4 ? tok[want_tok[g][row]][static_cast<size_t>(j)] : 0;
                    EXPECT_EQ(b8(out[g], row, 3, j), want) << g << "," << row << "," << j;
                }
                EXPECT_EQ(scale_bits(out[g], static_cast<size_t>(row)),
                          row < 4 ? want_scale[g][row] : 0u)
                    << g << "," << row;
            }
        }
        c.expand_elem = el == Elem::kFp8E4M3 ? Elem::kFp8E5M2 : Elem::kFp8E4M3;
        EXPECT_TRUE(rejected(c, in));  // expandX must be x's dtype in mode 0
    }
    r::JobConfig c = tiny_cfg();
    c.x_elem = c.expand_elem = Elem::kFp8E4M3;
    auto bad = in;
    bad[1].x_scales.pop_back();  // BS - 1 scales
    EXPECT_TRUE(rejected(c, bad));
    bad = in;
    bad[0].x8.pop_back();  // BS·H - 1 bytes
    EXPECT_TRUE(rejected(c, bad));
    EXPECT_TRUE(rejected(c, tiny_ranks()));  // 16-bit x given for an 8-bit x dtype
}

// Static int8 (mode 1). W=2, S=1, E=1 (expert 0 on rank 1), K=1, H=4, BS=1, bf16. A = 2 on both.
//   rank 0 (shared) x = [1, -3, -100, NaN];  rank 1 (MoE) x = [0.5, 2.5, -1, Inf].
// Shared rank 0 rows: [rank0 own, rank1]; MoE rank 1 rows: [rank0, rank1] (src order).
// q = clamp(rne(fl32(x·s)), -128, 127), NaN -> 0.
//  (1,):  rank0 s=2.5: [2.5->2, -7.5->-8, -250->-128, NaN->0];
//         rank1 s=51:  [25.5->26, 127.5->128->127, -51, Inf->127]. Same on both destinations.
//  (H,):  rank0 s=[0.5,3,1.5,7]: [0.5->0, -9, -150->-128, 0];
//         rank1 s=[5,-1,0.25,-1]: [2.5->2, -2.5->-2, -0.25->0, -Inf->-128].
//  (E+1,H): row 0 for shared rows, row e+1 = 1 for expert 0.
//         rank0 row0 [1,1,1,1] -> [1,-3,-100,0]; row1 [3,.5,.5,.5] -> [3,-1.5->-2,-50,0];
//         rank1 row0 [2,2,2,2] -> [1,5,-2,127];  row1 [1,1,200,0] -> [0.5->0,2.5->2,-200->-128,
//         Inf·0=NaN->0].
TEST(ReferenceQuant, StaticInt8EveryScalesShape) {
    r::JobConfig c;
    c.ep_world_size = 2;
    c.shared_rank_num = 1;
    c.moe_expert_num = 1;
    c.top_k = 1;
    c.hidden = 4;
    c.quant_mode = 1;
    c.x_elem = Elem::kBFloat16;
    c.expand_elem = Elem::kInt8;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    std::vector<r::RankInput> in = {make_rank(Elem::kBFloat16, 1, {1, -3, -100, nan}, {0}, {1}),
                                    make_rank(Elem::kBFloat16, 1, {0.5f, 2.5f, -1, inf}, {0}, {1})};
    struct Case {
        int kind;
        std::vector<float> s0, s1;
        int want[2][2][4];  // [receiving rank][row][j]
    };
    const std::vector<Case> cases = {
        {1,
         {2.5f},
         {51},
         {{{2, -8, -128, 0}, {26, 127, -51, 127}}, {{2, -8, -128, 0}, {26, 127, -51, 127}}}},
        {2,
         {0.5f, 3, 1.5f, 7},
         {5, -1, 0.25f, -1},
         {{{0, -9, -128, 0}, {2, -2, 0, -128}}, {{0, -9, -128, 0}, {2, -2, 0, -128}}}},
        {3,
         {1, 1, 1, 1, 3, 0.5f, 0.5f, 0.5f},
         {2, 2, 2, 2, 1, 1, 200, 0},
         {{{1, -3, -100, 0}, {1, 5, -2, 127}}, {{3, -2, -50, 0}, {0, 2, -128, 0}}}},
    };
    for (const Case& k : cases) {
        c.static_scales = k.kind;
        in[0].scales = k.s0;
        in[1].scales = k.s1;
        std::string err;
        const auto out = r::dispatch(c, in, &err);
        ASSERT_EQ(out.size(), 2u) << err;
        for (size_t g = 0; g < 2; ++g) {
            ASSERT_EQ(out[g].expand_x.size(), 2u * 4u) << k.kind;
            EXPECT_TRUE(out[g].dynamic_scales.empty());
            for (int row = 0; row < 2; ++row)
                for (int j = 0; j < 4; ++j)
                    EXPECT_EQ(q8(out[g], row, 4, j), k.want[g][row][j])
                        << "kind " << k.kind << " rank " << g << " row " << row << " j " << j;
        }
        in[1].scales.push_back(1.0f);  // one entry too many for this shape
        EXPECT_TRUE(rejected(c, in)) << k.kind;
    }
    in[0].scales = {1};
    in[1].scales = {1};
    c.static_scales = 1;
    ASSERT_FALSE(rejected(c, in));
    for (int kind : {0, 4}) {  // no scales shape / an unknown one
        c.static_scales = kind;
        EXPECT_TRUE(rejected(c, in)) << kind;
    }
}

// Static hifloat8 (mode 1, scales (1,) = [3]), W=1, H=10, bf16. q = hif8(fl32(x·3)):
//   1 -> 3 = 2^1·1.5: dot 001, exponent +1, mantissa 100        -> 0x14;  -1 -> 0x94;
//   0.375 -> 1.125: dot 0001, mantissa 001                      -> 0x09;
//   6 -> 18: D=3 range [16,32) has 16,20,24,28; 18 is the exact midpoint of 16 and 20 -> away from
//        zero -> 20 = 2^4·1.25: dot 10, exponent 4 (+, field 00), mantissa 01 -> 0x41 (RNE: 0x40);
//   -16384 -> -49152 (the would-be 0xEF, which is -Inf): saturates to -32768 -> 0xEE;
//   -0 -> 0x00 (hifloat8 has one zero); 2^-24 -> 1.5·2^-23 > 2^-23 (midpoint of 0 and the smallest
//   denormal 2^-22) -> 0x01; 2^-26 -> 0.75·2^-24 < 2^-23 -> 0x00; NaN -> 0x80; Inf -> 0x6E.
TEST(ReferenceQuant, StaticHiFloat8) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    r::JobConfig c = one_rank_cfg(10, 1, Elem::kBFloat16, Elem::kHiFloat8, 0);
    c.static_scales = 1;
    auto in = one_rank(
        Elem::kBFloat16,
        1,
        {1, -1, 0.375f, 6, -16384, -0.0f, std::ldexp(1.0f, -24), std::ldexp(1.0f, -26), nan, inf});
    in[0].scales = {3};
    std::string err;
    const auto out = r::dispatch(c, in, &err);
    ASSERT_EQ(out.size(), 1u) << err;
    ASSERT_EQ(out[0].expand_x.size(), 10u);
    EXPECT_TRUE(out[0].dynamic_scales.empty());
    const int want[10] = {0x14, 0x94, 0x09, 0x41, 0xEE, 0x00, 0x01, 0x00, 0x80, 0x6E};
    for (int j = 0; j < 10; ++j) EXPECT_EQ(b8(out[0], 0, 10, j), want[j]) << j;
    c.static_scales = 2;  // hifloat8 takes only (1,)
    in[0].scales.assign(10, 3.0f);
    EXPECT_TRUE(rejected(c, in));
}

// Per-token dynamic e4m3 (mode 2), W=1, H=8, bf16, no smooth.
//   x = [3.5, 1.25, -0.5625, 3·2^-8, 1.15625, 1.1875, 2^-16, -2^-18]; m = 3.5, ds = 448/3.5 = 128
//   (exact), scale = 1/128 = 0.0078125. x·128 = [448, 160, -72, 1.5, 148, 152, 2^-9, -2^-11]:
//   448 = 1.75·2^8 -> 0|1111|110 = 0x7E; 160 = 1.25·2^7 -> 0|1110|010 = 0x72;
//   -72 = -1.125·2^6 -> 1|1101|001 = 0xE9; 1.5 -> 0|0111|100 = 0x3C;
//   148 between 144 (0x71) and 160 (0x72), nearer 144 -> 0x71; 152 = their midpoint -> even 0x72;
//   2^-9 = smallest subnormal -> 0x01; -2^-11 = a quarter of it -> -0 -> 0x80 (sign kept).
TEST(ReferenceQuant, PerTokenE4M3KnownScale) {
    const r::JobConfig c = one_rank_cfg(8, 2, Elem::kBFloat16, Elem::kFp8E4M3, 0);
    const auto in = one_rank(Elem::kBFloat16,
                             1,
                             {3.5f,
                              1.25f,
                              -0.5625f,
                              0.01171875f,
                              1.15625f,
                              1.1875f,
                              std::ldexp(1.0f, -16),
                              -std::ldexp(1.0f, -18)});
    std::string err;
    const auto out = r::dispatch(c, in, &err);
    ASSERT_EQ(out.size(), 1u) << err;
    ASSERT_EQ(out[0].expand_x.size(), 8u);
    ASSERT_EQ(out[0].dynamic_scales.size(), 1u);
    EXPECT_EQ(out[0].dynamic_scales[0], 0.0078125f);
    const int want[8] = {0x7E, 0x72, 0xE9, 0x3C, 0x71, 0x72, 0x01, 0x80};
    for (int j = 0; j < 8; ++j) EXPECT_EQ(b8(out[0], 0, 8, j), want[j]) << j;
}

// NaN and zero rules of modes 2 (fp8 targets), with smooth scales. W=1, E=1 (smooth row 0 =
// [3, -7]), H=2, BS=5, globalBs=6 -> A = 6.
//   t0 [1, 2]    -> y = [3, -14], m = 14.
//        e4m3: ds = 448/14 = 32, y·ds = [96, -448] -> 0x6C (1.5·2^6), 0xFE; scale 1/32.
//        e5m2: ds = 57344/14 = 4096, y·ds = [12288, -57344] -> 0x72 (1.5·2^13: 0|11100|10), 0xFB;
//              scale 2^-12.
//   t1 [-0, 0]   -> y = [-0, -0], m = 0: q = 0 (0x00, not 0x80), scale +0.
//   t2 [1, -NaN] -> y = [3, NaN]: every q the POSITIVE canonical NaN, scale 0x7FC00000.
//   t3 [-Inf, 1] -> y = [-Inf, -7], m = Inf: same.
//   t4 [2^-133, -2^-133] -> y = [3·2^-133, 7·2^-133]: maxV / m = 64·2^133 = 2^139 (e4m3) or
//        2^146 (e5m2) overflows binary32 -> ds = +Inf: same.
//   row 5: zero bytes, scale 0.
TEST(ReferenceQuant, PerTokenFp8NaNAndZeroRules) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    const float tiny = std::ldexp(1.0f, -133);
    struct Case {
        Elem el;
        int t0[2];
        uint32_t t0_scale;
        int nan_code;
    };
    for (const Case& k : {Case{Elem::kFp8E4M3, {0x6C, 0xFE}, 0x3D000000u, 0x7F},     // 2^-5
                          Case{Elem::kFp8E5M2, {0x72, 0xFB}, 0x39800000u, 0x7E}}) {  // 2^-12
        r::JobConfig c = one_rank_cfg(2, 2, Elem::kBFloat16, k.el, 6);
        c.has_smooth_scales = true;
        auto in = one_rank(Elem::kBFloat16, 5, {1, 2, -0.0f, 0, 1, -nan, -inf, 1, tiny, -tiny});
        in[0].scales = {3, -7};
        std::string err;
        const auto out = r::dispatch(c, in, &err);
        ASSERT_EQ(out.size(), 1u) << err;
        ASSERT_EQ(out[0].expand_x.size(), 6u * 2u);
        ASSERT_EQ(out[0].dynamic_scales.size(), 6u);
        const int want[6][2] = {{k.t0[0], k.t0[1]},
                                {0, 0},
                                {k.nan_code, k.nan_code},
                                {k.nan_code, k.nan_code},
                                {k.nan_code, k.nan_code},
                                {0, 0}};
        const uint32_t want_scale[6] = {k.t0_scale, 0u, 0x7FC00000u, 0x7FC00000u, 0x7FC00000u, 0u};
        for (int row = 0; row < 6; ++row) {
            for (int j = 0; j < 2; ++j) EXPECT_EQ(b8(out[0], row, 2, j), want[row][j]) << row << j;
            EXPECT_EQ(scale_bits(out[0], static_cast<size_t>(row)), want_scale[row]) << row;
        }
    }
}

// Per-group dynamic e4m3 (mode 3), W=1, H=130 -> groups [0,128) and the tail [128,130), G = 2;
// BS=2, globalBs=3 -> A = 3, dynamicScales 3·2 entries, row-major.
//   t0: x[0]=7, x[1]=-3.5, x[2]=0.5, x[128]=0.875, x[129]=-0.0625, the rest 0.
//       group 0: m=7, ds=64 -> [448, -224, 32, 0...] -> 0x7E, 0xF6 (1.75·2^7), 0x60 (2^5), 0x00;
//                scale 1/64.
//       group 1: m=0.875, ds=512 -> [448, -32] -> 0x7E, 0xE0; scale 1/512. (One scale for the
//                whole row, ds=64, would give 56 -> 0x66 for x[128].)
//   t1: x[0]=NaN, x[1..127]=1, x[128]=0, x[129]=-0: group 0 all 0x7F, scale 0x7FC00000;
//       group 1 m=0: q 0x00, scale +0.
TEST(ReferenceQuant, PerGroupWithTailGroup) {
    const int h = 130;
    r::JobConfig c = one_rank_cfg(h, 3, Elem::kBFloat16, Elem::kFp8E4M3, 3);
    std::vector<float> x(2 * h, 0.0f);
    x[0] = 7;
    x[1] = -3.5f;
    x[2] = 0.5f;
    x[128] = 0.875f;
    x[129] = -0.0625f;
    x[h] = std::numeric_limits<float>::quiet_NaN();
    for (int j = 1; j < 128; ++j) x[static_cast<size_t>(h + j)] = 1;
    x[static_cast<size_t>(h + 129)] = -0.0f;
    const auto in = one_rank(Elem::kBFloat16, 2, x);
    std::string err;
    const auto out = r::dispatch(c, in, &err);
    ASSERT_EQ(out.size(), 1u) << err;
    ASSERT_EQ(out[0].expand_x.size(), 3u * 130u);
    ASSERT_EQ(out[0].dynamic_scales.size(), 6u);
    const uint32_t want_scale[6] = {0x3C800000u, 0x3B000000u, 0x7FC00000u, 0u, 0u, 0u};
    for (size_t i = 0; i < 6; ++i) EXPECT_EQ(scale_bits(out[0], i), want_scale[i]) << i;
    for (int j = 0; j < h; ++j) {
        int w0 = 0x00;
        if (j == 0 || j == 128) w0 = 0x7E;
        if (j == 1) w0 = 0xF6;
        if (j == 2) w0 = 0x60;
        if (j == 129) w0 = 0xE0;
        EXPECT_EQ(b8(out[0], 0, h, j), w0) << j;
        EXPECT_EQ(b8(out[0], 1, h, j), j < 128 ? 0x7F : 0x00) << j;
        EXPECT_EQ(b8(out[0], 2, h, j), 0x00) << j;
    }
    c.expand_elem = Elem::kInt8;  // mode 3 is fp8 only
    EXPECT_TRUE(rejected(c, in));
    c.expand_elem = Elem::kHiFloat8;
    EXPECT_TRUE(rejected(c, in));
}

// MX e4m3 (mode 4, emax_elem 8), W=1, H=70 -> blocks [0,32), [32,64), tail [64,70): 3 scale
// bytes + 1 pad byte (0x00) per row. BS=2, globalBs=3 -> A = 3. bf16 x.
//   t0 block 0: [3.75, 3, 1.25, -3·2^-8, 0...]: amax 3.75, e = 1, b = 1-8+127 = 120 (0x78),
//        x·2^7 = [480 -> saturates 448 = 0x7E, 384 = 1.5·2^8 -> 0x7C, 160 -> 0x72, -1.5 -> 0xBC].
//      block 1: [3·2^-133, -2^-133, 0...] (binary32 subnormals): amax subnormal, e = -132,
//        b = clamp(-13) = 0, x·2^127 = [3·2^-6 = 1.5·2^-5 -> 0|0010|100 = 0x14,
//        -2^-6 -> 1|0001|000 = 0x88] (not zeroed as the device does).
//      block 2: [1, NaN, 0, 0, 0, 0] -> b = 0xFF, all six q = 0x7F.
//   t1 block 0: zeros -> b = 0, q = 0. block 1: x[40] = -Inf, x[41] = 2 -> b = 0xFF, all 0x7F.
//      block 2: [0, 0, 0, 0, 0, -1]: amax 1 (the tail alone), e = 0, b = 119 (0x77),
//        -1·2^8 = -256 -> 1|1111|000 = 0xF8.
//   Scale rows: t0 [0x78, 0x00, 0xFF, pad 0x00], t1 [0x00, 0xFF, 0x77, pad 0x00], row 2 zeros.
TEST(ReferenceQuant, MxBlocksSubnormalNaNAndPad) {
    const int h = 70;
    r::JobConfig c = one_rank_cfg(h, 4, Elem::kBFloat16, Elem::kFp8E4M3, 3);
    std::vector<float> x(2 * h, 0.0f);
    x[0] = 3.75f;
    x[1] = 3;
    x[2] = 1.25f;
    x[3] = -0.01171875f;
    x[32] = std::ldexp(3.0f, -133);
    x[33] = -std::ldexp(1.0f, -133);
    x[64] = 1;
    x[65] = std::numeric_limits<float>::quiet_NaN();
    x[h + 40] = -std::numeric_limits<float>::infinity();
    x[h + 41] = 2;
    x[h + 69] = -1;
    const auto in = one_rank(Elem::kBFloat16, 2, x);
    ASSERT_EQ(in[0].x[32], 0x0003);  // bf16 subnormals as intended
    std::string err;
    const auto out = r::dispatch(c, in, &err);
    ASSERT_EQ(out.size(), 1u) << err;
    ASSERT_EQ(out[0].expand_x.size(), 3u * 70u);
    EXPECT_TRUE(out[0].dynamic_scales.empty());
    EXPECT_EQ(out[0].dynamic_scale_bytes,
              (std::vector<uint8_t>{0x78, 0x00, 0xFF, 0x00, 0x00, 0xFF, 0x77, 0x00, 0, 0, 0, 0}));
    std::vector<int> t0(h, 0x00), t1(h, 0x00);
    t0[0] = 0x7E;
    t0[1] = 0x7C;
    t0[2] = 0x72;
    t0[3] = 0xBC;
    t0[32] = 0x14;
    t0[33] = 0x88;
    for (int j = 64; j < 70; ++j) t0[static_cast<size_t>(j)] = 0x7F;
    for (int j = 32; j < 64; ++j) t1[static_cast<size_t>(j)] = 0x7F;
    t1[69] = 0xF8;
    for (int j = 0; j < h; ++j) {
        EXPECT_EQ(b8(out[0], 0, h, j), t0[static_cast<size_t>(j)]) << j;
        EXPECT_EQ(b8(out[0], 1, h, j), t1[static_cast<size_t>(j)]) << j;
        EXPECT_EQ(b8(out[0], 2, h, j), 0x00) << j;
    }
    c.expand_elem = Elem::kInt8;  // mode 4 is fp8 only
    EXPECT_TRUE(rejected(c, in));
    c.expand_elem = Elem::kFp8E4M3;
    c.has_smooth_scales = true;  // and takes no scales
    auto with_scales = in;
    with_scales[0].scales.assign(h, 1.0f);
    EXPECT_TRUE(rejected(c, with_scales));
}

// MX e5m2 (emax_elem 15) on fp16 subnormals (binary32 normals): the exponent is exact.
// W=1, H=64 -> 2 blocks, 2 scale bytes (no pad).
//   block 0: [3·2^-24, 2^-24, 0...]: e = -23, b = -23-15+127 = 89 (0x59), x·2^38 = [49152 =
//     1.5·2^15 -> 0|11110|10 = 0x7A, 2^14 -> 0|11101|00 = 0x74].
//   block 1: [1023·2^-24, -2^-24, 0...]: e = 9-24 = -15, b = 97 (0x61), x·2^30 = [65472 >
//     57344 -> saturates 0x7B, -64 = -2^6 -> 1|10101|00 = 0xD4].
TEST(ReferenceQuant, MxE5M2ExactExponentOfFp16Subnormals) {
    r::JobConfig c = one_rank_cfg(64, 4, Elem::kFloat16, Elem::kFp8E5M2, 0);
    std::vector<float> x(64, 0.0f);
    x[0] = std::ldexp(3.0f, -24);
    x[1] = std::ldexp(1.0f, -24);
    x[32] = std::ldexp(1023.0f, -24);
    x[33] = -std::ldexp(1.0f, -24);
    const auto in = one_rank(Elem::kFloat16, 1, x);
    ASSERT_EQ(in[0].x[32], 0x03FF);
    std::string err;
    const auto out = r::dispatch(c, in, &err);
    ASSERT_EQ(out.size(), 1u) << err;
    EXPECT_EQ(out[0].dynamic_scale_bytes, (std::vector<uint8_t>{0x59, 0x61}));
    std::vector<int> want(64, 0x00);
    want[0] = 0x7A;
    want[1] = 0x74;
    want[32] = 0x7B;
    want[33] = 0xD4;
    ASSERT_EQ(out[0].expand_x.size(), 64u);
    for (int j = 0; j < 64; ++j) EXPECT_EQ(b8(out[0], 0, 64, j), want[static_cast<size_t>(j)]) << j;
}

// Combinations outside SPEC §5's table are rejected with a message.
TEST(ReferenceQuant, OutsideTheTableIsRejected) {
    const auto in = one_rank(Elem::kBFloat16, 1, {1, 2});
    struct Bad {
        int mode;
        Elem x, expand;
    };
    const Bad bad[] = {{5, Elem::kBFloat16, Elem::kInt8},
                       {-1, Elem::kBFloat16, Elem::kBFloat16},
                       {0, Elem::kBFloat16, Elem::kFloat16},
                       {0, Elem::kInt8, Elem::kInt8},
                       {1, Elem::kBFloat16, Elem::kFp8E4M3},
                       {2, Elem::kBFloat16, Elem::kHiFloat8},
                       {2, Elem::kBFloat16, Elem::kBFloat16},
                       {3, Elem::kBFloat16, Elem::kInt8},
                       {4, Elem::kBFloat16, Elem::kHiFloat8},
                       {2, Elem::kFp8E4M3, Elem::kFp8E4M3}};
    for (const Bad& b : bad) {
        r::JobConfig c = one_rank_cfg(2, b.mode, b.x, b.expand, 0);
        if (b.mode == 1) c.static_scales = 1;
        auto rin = in;
        if (b.x == Elem::kFp8E4M3) {
            rin[0].x.clear();
            rin[0].x8 = {0x38, 0x40};
            rin[0].x_scales = {1};
        }
        rin[0].scales = {1};
        EXPECT_TRUE(rejected(c, rin)) << b.mode;
    }
    // Modes 2 / 3 accept these dtypes; then smooth scales are optional, static ones forbidden.
    r::JobConfig c = one_rank_cfg(2, 2, Elem::kBFloat16, Elem::kFp8E5M2, 0);
    EXPECT_FALSE(rejected(c, in));
    c.static_scales = 1;
    EXPECT_TRUE(rejected(c, in));
    c = one_rank_cfg(2, 0, Elem::kBFloat16, Elem::kBFloat16, 0);
    c.has_smooth_scales = true;  // mode 0 takes no scales
    auto sm = in;
    sm[0].scales = {1, 1};
    EXPECT_TRUE(rejected(c, sm));
    c.quant_mode = 3;
    c.expand_elem = Elem::kFp8E4M3;
    EXPECT_FALSE(rejected(c, sm));
    sm[0].scales = {1};  // (E, H) needs 2 entries
    EXPECT_TRUE(rejected(c, sm));
}

// Combine reads expert outputs in combine_elem, whatever dispatch's x was. Pre-quantized e4m3
// dispatch (W=1, E=1, K=1, H=2), expertScales [2]; the expert returns 16-bit [0x3C01, 0xC200].
//   fp16: 0x3C01 = 1 + 2^-10 -> ·2 = 2 + 2^-9 = 0x4001; 0xC200 = -3 -> -6 = 0xC600.
//   bf16: 0x3C01 = 2^-7·(1 + 2^-7) -> ·2 = 0x3C81; 0xC200 = -32 -> -64 = 0xC280.
TEST(ReferenceQuant, CombineUsesCombineElem) {
    r::JobConfig c = one_rank_cfg(2, 0, Elem::kFp8E4M3, Elem::kFp8E4M3, 0);
    r::RankInput rk;
    rk.num_tokens = 1;
    rk.x8 = {0x38, 0x40};
    rk.x_scales = {0.25f};
    rk.expert_ids = {0};
    rk.expert_scales = {2.0f};
    const std::vector<r::RankInput> in = {rk};
    std::string err;
    const auto out = r::dispatch(c, in, &err);
    ASSERT_EQ(out.size(), 1u) << err;
    EXPECT_EQ(out[0].dynamic_scales, (std::vector<float>{0.25f}));
    const std::vector<std::vector<uint16_t>> eo = {{0x3C01, 0xC200}};
    c.combine_elem = Elem::kFloat16;
    auto x = r::combine(c, in, out, eo);
    ASSERT_EQ(x.size(), 1u);
    EXPECT_EQ(x[0], (std::vector<uint16_t>{0x4001, 0xC600}));
    c.combine_elem = Elem::kBFloat16;
    x = r::combine(c, in, out, eo);
    ASSERT_EQ(x.size(), 1u);
    EXPECT_EQ(x[0], (std::vector<uint16_t>{0x3C81, 0xC280}));
    c.combine_elem = Elem::kFp8E4M3;  // combine is fp16 / bf16 only
    EXPECT_TRUE(r::combine(c, in, out, eo).empty());
    c.combine_elem = Elem::kFloat16;
    c.comm_quant_mode = 1;
    EXPECT_TRUE(r::combine(c, in, out, eo).empty());
}

}  // namespace
