// The fast path's conversions and row kernels against the reference's independent scalar ones,
// exhaustively over every 16-bit encoding and over binary32 boundary values.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "quant/float_bits.hpp"
#include "quant/row_kernels.hpp"
#include "reference.hpp"

namespace moedist::quant {
namespace {

bool same_bits_or_both_nan(float a, float b) {
    return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b) ||
           (std::isnan(a) && std::isnan(b));
}

TEST(Codec, EveryHalfAndBfloat16DecodesLikeTheReference) {
    std::vector<uint16_t> all(65536);
    for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
    std::vector<float> got(65536);
    for (DType dtype : {DType::kFloat16, DType::kBFloat16}) {
        load_row_f32(dtype, all.data(), 1, got.data(), 65536);
        for (uint32_t i = 0; i < 65536; ++i) {
            const float want = dtype == DType::kFloat16
                                   ? moedist_ref::f16_to_f32(static_cast<uint16_t>(i))
                                   : moedist_ref::bf16_to_f32(static_cast<uint16_t>(i));
            ASSERT_TRUE(same_bits_or_both_nan(got[i], want)) << dtype_name(dtype) << " " << i;
        }
    }
}

// Every encoding, its neighbours' midpoints and one ulp either side of them, and specials.
std::vector<float> boundary_values(DType dtype) {
    std::vector<float> values = {0.0f,
                                 -0.0f,
                                 INFINITY,
                                 -INFINITY,
                                 NAN,
                                 -NAN,
                                 65504.0f,
                                 65519.99f,
                                 65520.0f,
                                 0x1p-24f,
                                 0x1p-25f,
                                 0x1.000002p-25f,
                                 0x1p-149f,
                                 3.4028235e38f,
                                 -3.4028235e38f};
    for (uint32_t i = 0; i < 65536; ++i) {
        const float a = dtype == DType::kFloat16 ? f16_to_f32(static_cast<uint16_t>(i))
                                                 : bf16_to_f32(static_cast<uint16_t>(i));
        const float b = dtype == DType::kFloat16 ? f16_to_f32(static_cast<uint16_t>(i + 1))
                                                 : bf16_to_f32(static_cast<uint16_t>(i + 1));
        if (!std::isfinite(a) || !std::isfinite(b)) continue;
        const double mid = (static_cast<double>(a) + static_cast<double>(b)) / 2;
        const auto m = static_cast<float>(mid);
        values.push_back(a);
        values.push_back(m);
        values.push_back(std::nextafter(m, INFINITY));
        values.push_back(std::nextafter(m, -INFINITY));
    }
    return values;
}

TEST(Codec, Binary32BoundariesEncodeLikeTheReference) {
    for (DType dtype : {DType::kFloat16, DType::kBFloat16}) {
        const std::vector<float> values = boundary_values(dtype);
        std::vector<uint16_t> got(values.size());
        store_row_f32(dtype, values.data(), got.data(), 1, static_cast<int64_t>(values.size()));
        for (std::size_t i = 0; i < values.size(); ++i) {
            const uint16_t want = dtype == DType::kFloat16 ? moedist_ref::f32_to_f16(values[i])
                                                           : moedist_ref::f32_to_bf16(values[i]);
            ASSERT_EQ(got[i], want) << dtype_name(dtype) << " value " << values[i] << " bits "
                                    << std::hex << std::bit_cast<uint32_t>(values[i]);
            ASSERT_EQ(dtype == DType::kFloat16 ? f32_to_f16(values[i]) : f32_to_bf16(values[i]),
                      want);
        }
    }
}

TEST(Codec, QuantizeRowInt8SpecialCases) {
    std::vector<int8_t> q(4, 99);
    std::vector<float> zeros(4, 0.0f);
    EXPECT_EQ(std::bit_cast<uint32_t>(quantize_row_int8(zeros.data(), nullptr, 1, q.data(), 1, 4)),
              0u);
    EXPECT_EQ(q, std::vector<int8_t>(4, 0));
    std::vector<float> with_nan = {1.0f, NAN, 2.0f, 3.0f};
    EXPECT_EQ(
        std::bit_cast<uint32_t>(quantize_row_int8(with_nan.data(), nullptr, 1, q.data(), 1, 4)),
        0x7FC00000u);
    EXPECT_EQ(q, std::vector<int8_t>(4, 0));
    std::vector<float> tiny = {0x1p-149f, 0.0f, -0x1p-149f, 0.0f};  // 127 / m overflows: ds = +Inf
    EXPECT_EQ(std::bit_cast<uint32_t>(quantize_row_int8(tiny.data(), nullptr, 1, q.data(), 1, 4)),
              0x7FC00000u);
    // m = 2: ds = 63.5, q = rne(v * 63.5): 1 -> 63.5 -> 64 (even), -2 -> -127, 0.5 -> 31.75 -> 32.
    std::vector<float> row = {1.0f, -2.0f, 0.5f, 0.25f};
    const float scale = quantize_row_int8(row.data(), nullptr, 1, q.data(), 1, 4);
    EXPECT_EQ(q, (std::vector<int8_t>{64, -127, 32, 16}));
    EXPECT_EQ(scale, 1.0f / 63.5f);
}

}  // namespace
}  // namespace moedist::quant
