// The fused AVX-512 row quantizers against the generic path and against an oracle written from
// SPEC §5 with the scalar conversions of fp8.hpp, on rows built to hit every corner: magnitudes
// spread over 2^-40..2^20 (subnormal fp8 results, exact ties after scaling), zeros, −0-only
// blocks, saturation, NaN/Inf in some groups only, maxima so small that ds overflows, and every
// length class (tails of the 16/64-lane loops, partial groups of 128 and blocks of 32).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "quant/dispatch_quant.hpp"
#include "quant/float_bits.hpp"
#include "quant/fp8.hpp"
#include "quant/fused_rows.hpp"
#include "quant/row_kernels.hpp"

namespace moedist::quant {
namespace {

constexpr int64_t kHidden = 333;  // 2 full groups of 128 + 77; 10 MX blocks + 13

uint16_t narrow(DType dtype, float v) {
    return dtype == DType::kBFloat16 ? f32_to_bf16(v) : f32_to_f16(v);
}

std::vector<uint16_t> spread_row(std::mt19937& gen, DType dtype, int kind, int64_t n = kHidden) {
    std::vector<uint16_t> row(static_cast<std::size_t>(n));
    std::uniform_real_distribution<float> mant(1.0f, 2.0f);
    std::uniform_int_distribution<int> exponent(-40, 20), sign(0, 1);
    for (auto& bits : row) {
        float v = std::ldexp(mant(gen), exponent(gen)) * (sign(gen) ? -1.0f : 1.0f);
        if (kind == 1) v = 0.0f;
        bits = narrow(dtype, v);
    }
    auto at = [&](int64_t i) -> uint16_t& { return row[static_cast<std::size_t>(i % n)]; };
    if (kind == 2) at(7) = dtype == DType::kBFloat16 ? 0x7FC0 : 0x7E00;    // NaN
    if (kind == 3) at(200) = dtype == DType::kBFloat16 ? 0xFF80 : 0xFC00;  // -Inf
    if (kind == 4) at(3) = 0x8000;                                         // -0 among values
    if (kind == 5) {  // a group and a block of −0 only, one of +0 only
        for (int64_t i = 0; i < std::min<int64_t>(n, 128); ++i) at(i) = 0x8000;
        for (int64_t i = 128; i < std::min<int64_t>(n, 160); ++i) at(i) = 0;
    }
    if (kind == 6) {  // a group of bf16-only tiny values (ds = maxV / m overflows: NaN group)
        for (int64_t i = 0; i < std::min<int64_t>(n, 128); ++i)
            at(i) = static_cast<uint16_t>(dtype == DType::kBFloat16 ? 0x0001 + i % 50 : 0x0001);
    }
    if (kind == 7) {  // narrow spread: many exact ties and saturating maxima after scaling
        for (auto& bits : row)
            bits = narrow(dtype, static_cast<float>(static_cast<int>(gen() % 64) - 32) * 0.25f);
    }
    if (kind == 8) at(n - 1) = dtype == DType::kBFloat16 ? 0x7F80 : 0x7C00;  // +Inf, last lane
    if (kind == 9) {  // specials in later groups/blocks: NaN, +0 only, −0 only, tiny, Inf
        at(17 * 128 + 5) = dtype == DType::kBFloat16 ? 0xFFC1 : 0xFE01;
        for (int64_t i = 21 * 128; i < 22 * 128; ++i) at(i) = 0;
        for (int64_t i = 34 * 128; i < 35 * 128; ++i) at(i) = 0x8000;
        for (int64_t i = 30 * 128; i < 31 * 128; ++i)
            at(i) = dtype == DType::kBFloat16 ? 0x8003 : 0x0001;
        at(47 * 128 + 127) = dtype == DType::kBFloat16 ? 0x7F80 : 0x7C00;
    }
    return row;
}

uint8_t fp8(DType target, float v) {
    return target == DType::kFp8E4M3 ? f32_to_fp8_e4m3(v) : f32_to_fp8_e5m2(v);
}

// SPEC §5 per-token / per-group, from the scalar conversions.
float oracle_dynamic(DType target, const float* y, int64_t n, uint8_t* q) {
    uint32_t m = 0;
    for (int64_t i = 0; i < n; ++i) m = std::max(m, f32_bits(y[i]) & 0x7FFFFFFFu);
    if (m == 0) {
        std::fill_n(q, n, uint8_t{0});
        return 0.0f;
    }
    const float max_v = target == DType::kFp8E4M3 ? 448.0f : 57344.0f;
    const float ds = m >= 0x7F800000u ? INFINITY : max_v / bits_f32(m);
    if (std::isinf(ds)) {
        std::fill_n(q, n, target == DType::kFp8E4M3 ? uint8_t{0x7F} : uint8_t{0x7E});
        return bits_f32(0x7FC00000u);
    }
    for (int64_t i = 0; i < n; ++i) q[i] = fp8(target, y[i] * ds);
    return 1.0f / ds;
}

// SPEC §5 MX block, from the scalar conversions.
uint8_t oracle_mx(DType target, const float* x, int64_t n, uint8_t* q) {
    uint32_t a = 0;
    for (int64_t i = 0; i < n; ++i) a = std::max(a, f32_bits(x[i]) & 0x7FFFFFFFu);
    if (a >= 0x7F800000u || a == 0) {
        std::fill_n(
            q,
            n,
            a == 0 ? uint8_t{0} : (target == DType::kFp8E4M3 ? uint8_t{0x7F} : uint8_t{0x7E}));
        return a == 0 ? uint8_t{0} : uint8_t{0xFF};
    }
    const int e = std::ilogb(bits_f32(a));  // exact for subnormals too
    const int b = std::clamp(e - (target == DType::kFp8E4M3 ? 8 : 15) + 127, 0, 254);
    const float multiplier = std::ldexp(1.0f, 127 - b);
    for (int64_t i = 0; i < n; ++i) q[i] = fp8(target, x[i] * multiplier);
    return static_cast<uint8_t>(b);
}

class Fused : public ::testing::TestWithParam<DType> {
protected:
    void SetUp() override {
        if (!fused_available()) GTEST_SKIP() << "no AVX-512 on this CPU (or a sanitizer build)";
    }
};

// One row through the fused quantizers and both references; returns false on the first
// difference (reported).
bool check_row(DType source,
               const std::vector<uint16_t>& x,
               const float* smooth,
               DType target,
               const std::string& what) {
    const auto n = static_cast<int64_t>(x.size());
    const auto un = static_cast<std::size_t>(n);
    std::vector<float> row(un), y(un), scales(un + 1), generic_row(un);
    std::vector<uint8_t> q_fused(un + 64, 0xA5), q_oracle(un), q_generic(un), bytes(un + 1, 0xA5);
    load_row_f32(source, x.data(), 1, row.data(), n);
    for (int64_t i = 0; i < n; ++i) y[i] = smooth != nullptr ? row[i] * smooth[i] : row[i];
    for (int64_t block_size : {n, int64_t{128}}) {
        fused_fp8_dynamic(
            source, x.data(), smooth, target, n, block_size, q_fused.data(), scales.data());
        for (int64_t begin = 0, b = 0; begin < n; begin += block_size, ++b) {
            const int64_t len = std::min(block_size, n - begin);
            const float want =
                oracle_dynamic(target, y.data() + begin, len, q_oracle.data() + begin);
            generic_row.assign(y.begin(), y.end());
            const float generic =
                quantize_dynamic(target, generic_row.data() + begin, q_generic.data() + begin, len);
            EXPECT_EQ(f32_bits(want), f32_bits(generic)) << what;
            if (f32_bits(scales[static_cast<std::size_t>(b)]) != f32_bits(want)) {
                ADD_FAILURE() << what << " block " << block_size << " scale " << b;
                return false;
            }
        }
        for (int64_t i = 0; i < n; ++i) {
            if (q_fused[i] != q_oracle[i] || q_generic[i] != q_oracle[i]) {
                ADD_FAILURE() << what << " block " << block_size << " i " << i << " fused "
                              << int{q_fused[i]} << " generic " << int{q_generic[i]} << " oracle "
                              << int{q_oracle[i]} << " y " << y[i];
                return false;
            }
        }
        for (std::size_t i = un; i < q_fused.size(); ++i) {
            if (q_fused[i] != 0xA5) {
                ADD_FAILURE() << what << " wrote past n at " << i;
                return false;
            }
        }
    }
    if (smooth != nullptr) return true;
    fused_fp8_mx(source, x.data(), target, n, q_fused.data(), bytes.data());
    for (int64_t begin = 0, b = 0; begin < n; begin += 32, ++b) {
        const int64_t len = std::min<int64_t>(32, n - begin);
        const uint8_t want = oracle_mx(target, row.data() + begin, len, q_oracle.data() + begin);
        generic_row.assign(row.begin(), row.end());
        EXPECT_EQ(
            int{want},
            int{quantize_mx(target, generic_row.data() + begin, q_generic.data() + begin, len)})
            << what;
        if (bytes[static_cast<std::size_t>(b)] != want) {
            ADD_FAILURE() << what << " mx block " << b << " byte " << int{bytes[b]} << " want "
                          << int{want};
            return false;
        }
    }
    if (bytes[un / 32 + (un % 32 != 0)] != 0xA5) {
        ADD_FAILURE() << what << " mx wrote a scale past the last block";
        return false;
    }
    for (int64_t i = 0; i < n; ++i) {
        if (q_fused[i] != q_oracle[i] || q_generic[i] != q_oracle[i]) {
            ADD_FAILURE() << what << " mx i " << i << " fused " << int{q_fused[i]} << " generic "
                          << int{q_generic[i]} << " oracle " << int{q_oracle[i]};
            return false;
        }
    }
    for (std::size_t i = un; i < q_fused.size(); ++i) {
        if (q_fused[i] != 0xA5) {
            ADD_FAILURE() << what << " mx wrote past n at " << i;
            return false;
        }
    }
    return true;
}

TEST_P(Fused, DynamicAndMxMatchTheOracleAndTheGenericPath) {
    const DType source = GetParam();
    std::mt19937 gen(11);
    std::vector<float> smooth(1024);
    for (auto& s : smooth)
        s = std::ldexp(std::uniform_real_distribution<float>(1.0f, 2.0f)(gen), -3);
    for (int trial = 0; trial < 400; ++trial) {
        const int kind = trial % 12 < 9 ? trial % 12 : 0;
        const auto x = spread_row(gen, source, kind);
        const DType target = trial % 2 ? DType::kFp8E4M3 : DType::kFp8E5M2;
        const bool with_smooth = trial % 3 == 0;
        ASSERT_TRUE(check_row(source,
                              x,
                              with_smooth ? smooth.data() : nullptr,
                              target,
                              "trial " + std::to_string(trial)));
    }
}

// Every length 1..200 and a few long ones (7168 is the benchmark's H), every kind of row.
TEST_P(Fused, EveryLengthMatchesTheOracle) {
    const DType source = GetParam();
    std::mt19937 gen(23);
    std::vector<float> smooth(8292);
    for (auto& s : smooth)
        s = std::ldexp(std::uniform_real_distribution<float>(1.0f, 2.0f)(gen),
                       -(static_cast<int>(gen() % 8)));
    std::vector<int64_t> lengths;
    for (int64_t n = 1; n <= 200; ++n) lengths.push_back(n);
    for (int64_t n : {255, 256, 257, 383, 384, 385, 511, 512, 513, 1000, 2048 + 33, 7168, 8292})
        lengths.push_back(n);
    int trial = 0;
    for (int64_t n : lengths) {
        for (int kind = 0; kind < (n > 6144 ? 10 : 9); kind += (n < 200 ? 3 : 1), ++trial) {
            const auto x = spread_row(gen, source, kind, n);
            const DType target = trial % 2 ? DType::kFp8E4M3 : DType::kFp8E5M2;
            const std::string what = "n " + std::to_string(n) + " kind " + std::to_string(kind);
            ASSERT_TRUE(check_row(source, x, nullptr, target, what));
            ASSERT_TRUE(check_row(source, x, smooth.data(), target, what + " smooth"));
        }
    }
}

TEST_P(Fused, StaticInt8MatchesTheGenericPath) {
    const DType source = GetParam();
    std::mt19937 gen(5);
    std::vector<float> per_channel(kHidden), row(kHidden);
    for (auto& s : per_channel)
        s = std::ldexp(std::uniform_real_distribution<float>(1.0f, 2.0f)(gen), 2);
    std::vector<uint8_t> q_generic(kHidden);
    std::vector<int8_t> q_fused(kHidden);
    for (int trial = 0; trial < 200; ++trial) {
        const auto x = spread_row(gen, source, trial % 10 < 5 ? trial % 10 : 0);
        const float scalar = std::ldexp(1.5f, trial % 40 - 20);
        const bool channel = trial % 2 == 0;
        fused_static_int8(source,
                          x.data(),
                          channel ? per_channel.data() : &scalar,
                          channel ? 1 : 0,
                          kHidden,
                          q_fused.data());
        load_row_f32(source, x.data(), 1, row.data(), kHidden);
        quantize_static(DType::kInt8,
                        row.data(),
                        channel ? per_channel.data() : &scalar,
                        channel ? 1 : 0,
                        q_generic.data(),
                        kHidden);
        ASSERT_EQ(0, std::memcmp(q_fused.data(), q_generic.data(), kHidden)) << trial;
    }
}

INSTANTIATE_TEST_SUITE_P(Sources,
                         Fused,
                         ::testing::Values(DType::kBFloat16, DType::kFloat16),
                         [](const ::testing::TestParamInfo<DType>& p) {
                             return std::string(dtype_name(p.param));
                         });

}  // namespace
}  // namespace moedist::quant
