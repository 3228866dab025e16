// The fused AVX-512 row quantizers against the generic path, on rows built to hit every corner:
// magnitudes spread over 2^-40..2^20 (subnormal fp8 results, exact ties after scaling), zeros,
// −0, saturation, and NaN/Inf in some rows.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "quant/dispatch_quant.hpp"
#include "quant/float_bits.hpp"
#include "quant/fused_rows.hpp"
#include "quant/row_kernels.hpp"

namespace moedist::quant {
namespace {

constexpr int64_t kHidden = 333;  // 2 full groups of 128 + 77; 10 MX blocks + 13

std::vector<uint16_t> spread_row(std::mt19937& gen, DType dtype, int kind) {
    std::vector<uint16_t> row(kHidden);
    std::uniform_real_distribution<float> mant(1.0f, 2.0f);
    std::uniform_int_distribution<int> exponent(-40, 20), sign(0, 1);
    for (auto& bits : row) {
        float v = std::ldexp(mant(gen), exponent(gen)) * (sign(gen) ? -1.0f : 1.0f);
        if (kind == 1) v = 0.0f;
        bits = dtype == DType::kBFloat16 ? f32_to_bf16(v) : f32_to_f16(v);
    }
    if (kind == 2) row[7] = dtype == DType::kBFloat16 ? 0x7FC0 : 0x7E00;    // NaN
    if (kind == 3) row[200] = dtype == DType::kBFloat16 ? 0xFF80 : 0xFC00;  // -Inf
    if (kind == 4) row[3] = 0x8000;                                         // -0 among values
    return row;
}

class Fused : public ::testing::TestWithParam<DType> {
protected:
    void SetUp() override {
        if (!fused_available()) GTEST_SKIP() << "no AVX-512 on this CPU (or a sanitizer build)";
    }
};

TEST_P(Fused, DynamicAndMxMatchTheGenericPath) {
    const DType source = GetParam();
    std::mt19937 gen(11);
    std::vector<float> smooth(kHidden), row(kHidden), scales_fused(kHidden), block(kHidden);
    for (auto& s : smooth)
        s = std::ldexp(std::uniform_real_distribution<float>(1.0f, 2.0f)(gen), -3);
    std::vector<uint8_t> q_fused(kHidden), q_generic(kHidden), mx_fused(kHidden);
    for (int trial = 0; trial < 300; ++trial) {
        const auto x = spread_row(gen, source, trial % 10 < 5 ? trial % 10 : 0);
        const DType target = trial % 2 ? DType::kFp8E4M3 : DType::kFp8E5M2;
        const bool with_smooth = trial % 3 == 0;
        for (int64_t block_size : {kHidden, int64_t{128}}) {
            fused_fp8_dynamic(source,
                              x.data(),
                              with_smooth ? smooth.data() : nullptr,
                              target,
                              kHidden,
                              block_size,
                              q_fused.data(),
                              scales_fused.data());
            load_row_f32(source, x.data(), 1, row.data(), kHidden);
            if (with_smooth) {
                for (int64_t i = 0; i < kHidden; ++i)
                    row[i] = row[i] * smooth[static_cast<std::size_t>(i)];
            }
            for (int64_t begin = 0, b = 0; begin < kHidden; begin += block_size, ++b) {
                const int64_t n = std::min(block_size, kHidden - begin);
                const float scale =
                    quantize_dynamic(target, row.data() + begin, q_generic.data() + begin, n);
                ASSERT_EQ(f32_bits(scale), f32_bits(scales_fused[static_cast<std::size_t>(b)]))
                    << trial;
            }
            ASSERT_EQ(q_fused, q_generic) << "trial " << trial << " block " << block_size;
        }
        fused_fp8_mx(source, x.data(), target, kHidden, q_fused.data(), mx_fused.data());
        load_row_f32(source, x.data(), 1, row.data(), kHidden);
        for (int64_t begin = 0, b = 0; begin < kHidden; begin += 32, ++b) {
            const int64_t n = std::min<int64_t>(32, kHidden - begin);
            ASSERT_EQ(quantize_mx(target, row.data() + begin, q_generic.data() + begin, n),
                      mx_fused[static_cast<std::size_t>(b)])
                << trial;
        }
        ASSERT_EQ(q_fused, q_generic) << "mx trial " << trial;
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
