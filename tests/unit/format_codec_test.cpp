// The 8-bit codecs of quant/fp8.hpp against the independent table reference (format_reference),
// exhaustively over every 8-bit code, every fp16 and bf16 value, and binary32 boundary values;
// the row helpers against the scalar functions. A few hand-picked values pin SPEC §5 directly, so
// a shared misreading of the spec by both implementations would still show.
#include "util/cpu.hpp"
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <bit>
#include <climits>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "format_reference.hpp"
#include "quant/fp8.hpp"
#include "quant/fused_rows.hpp"

namespace moedist::quant {
namespace {

using moedist_ref::Format8;

constexpr Format8 kFormats[] = {Format8::kFp8E4M3, Format8::kFp8E5M2, Format8::kHiFloat8};

uint32_t bits(float v) { return std::bit_cast<uint32_t>(v); }

std::string hex(uint32_t v) {
    char buffer[16];
    std::snprintf(buffer, sizeof buffer, "0x%08X", v);
    return buffer;
}

uint8_t encode(Format8 format, float v) {
    switch (format) {
        case Format8::kFp8E4M3:
            return f32_to_fp8_e4m3(v);
        case Format8::kFp8E5M2:
            return f32_to_fp8_e5m2(v);
        case Format8::kHiFloat8:
            return f32_to_hifloat8(v);
    }
    return 0;
}

float decode(Format8 format, uint8_t code) {
    switch (format) {
        case Format8::kFp8E4M3:
            return fp8_e4m3_to_f32(code);
        case Format8::kFp8E5M2:
            return fp8_e5m2_to_f32(code);
        case Format8::kHiFloat8:
            return hifloat8_to_f32(code);
    }
    return 0;
}

void encode_row(Format8 format, const float* src, uint8_t* dst, int64_t n) {
    switch (format) {
        case Format8::kFp8E4M3:
            return f32_row_to_fp8_e4m3(src, dst, n);
        case Format8::kFp8E5M2:
            return f32_row_to_fp8_e5m2(src, dst, n);
        case Format8::kHiFloat8:
            return f32_row_to_hifloat8(src, dst, n);
    }
}

void decode_row(Format8 format, const uint8_t* src, float* dst, int64_t n) {
    switch (format) {
        case Format8::kFp8E4M3:
            return fp8_e4m3_row_to_f32(src, dst, n);
        case Format8::kFp8E5M2:
            return fp8_e5m2_row_to_f32(src, dst, n);
        case Format8::kHiFloat8:
            return hifloat8_row_to_f32(src, dst, n);
    }
}

// fp16 and bf16 decoded exactly, from their definitions.
float half_value(uint16_t h) {
    const int e = (h >> 10) & 0x1F;
    const int m = h & 0x3FF;
    double magnitude = 0;
    if (e == 31) {
        magnitude = m == 0 ? std::numeric_limits<double>::infinity()
                           : std::numeric_limits<double>::quiet_NaN();
    } else {
        magnitude = e == 0 ? std::ldexp(m, -24) : std::ldexp(1024 + m, e - 25);
    }
    return static_cast<float>((h & 0x8000) ? -magnitude : magnitude);
}
float bfloat16_value(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

// Encodes `values` with the scalar codec, the reference, and the row helper; returns the number of
// disagreements and reports the first few.
int64_t encode_mismatches(Format8 format, const std::vector<float>& values) {
    std::vector<uint8_t> row(values.size());
    encode_row(format, values.data(), row.data(), static_cast<int64_t>(values.size()));
    int64_t mismatches = 0;
    for (std::size_t i = 0; i < values.size(); ++i) {
        const uint8_t want = moedist_ref::format8_encode(format, values[i]);
        const uint8_t got = encode(format, values[i]);
        if (got == want && row[i] == want) continue;
        if (++mismatches <= 10) {
            ADD_FAILURE() << moedist_ref::format8_name(format) << " input " << hex(bits(values[i]))
                          << " (" << values[i] << "): scalar " << int{got} << " row " << int{row[i]}
                          << " reference " << int{want};
        }
    }
    return mismatches;
}

// Representable values, neighbour midpoints and one binary32 ulp either side of both, specials,
// binary32 subnormals and the overflow edges, with both signs.
std::vector<float> boundary_values(Format8 format) {
    const std::vector<double> table = moedist_ref::format8_finite_values(format);
    std::vector<float> out;
    auto add = [&out](float v) {
        for (float x : {v, std::nextafter(v, INFINITY), std::nextafter(v, -INFINITY)}) {
            out.push_back(x);
            out.push_back(-x);
        }
    };
    for (std::size_t i = 0; i < table.size(); ++i) {
        add(static_cast<float>(table[i]));
        if (i + 1 < table.size()) {
            const double midpoint = (table[i] + table[i + 1]) / 2;
            if (static_cast<double>(static_cast<float>(midpoint)) != midpoint)
                ADD_FAILURE() << "inexact " << midpoint;
            add(static_cast<float>(midpoint));
        }
    }
    const double max_value = table.back();
    // The would-be next value above max (e4m3 480, e5m2 61440 (Inf), HiFloat8 1.5·2^15 (Inf)).
    const double next =
        format == Format8::kFp8E4M3 ? 480.0 : (format == Format8::kFp8E5M2 ? 61440.0 : 49152.0);
    add(static_cast<float>((max_value + next) / 2));
    add(static_cast<float>(next));
    for (float v : {0.0f,
                    INFINITY,
                    0x1p-149f,
                    0x1p-127f,
                    0x1.fffffcp-127f,
                    0x1p-126f,
                    0x1p-24f,
                    0x1p-23f,
                    65504.0f,
                    65536.0f,
                    1e30f,
                    std::numeric_limits<float>::max()}) {
        add(v);
    }
    for (uint32_t nan : {0x7FC00000u, 0x7F800001u, 0x7FFFFFFFu, 0x7FA00000u}) {
        out.push_back(std::bit_cast<float>(nan));
        out.push_back(std::bit_cast<float>(nan | 0x80000000u));
    }
    return out;
}

TEST(FormatReference, TablesHaveTheDefinedShape) {
    struct Shape {
        Format8 format;
        std::size_t finite_values;
        int nan_codes, inf_codes;
        double max, min_positive;
    };
    const Shape shapes[] = {{Format8::kFp8E4M3, 253, 2, 0, 448.0, 0x1p-9},
                            {Format8::kFp8E5M2, 247, 6, 2, 57344.0, 0x1p-16},
                            {Format8::kHiFloat8, 253, 1, 2, 32768.0, 0x1p-22}};
    for (const Shape& shape : shapes) {
        const std::vector<double> values = moedist_ref::format8_finite_values(shape.format);
        EXPECT_EQ(values.size(), shape.finite_values) << moedist_ref::format8_name(shape.format);
        EXPECT_EQ(values.back(), shape.max);
        EXPECT_EQ(values.front(), -shape.max);
        int nans = 0, infs = 0;
        double min_positive = INFINITY;
        for (unsigned code = 0; code < 256; ++code) {
            const double v = moedist_ref::format8_value(shape.format, static_cast<uint8_t>(code));
            nans += std::isnan(v) ? 1 : 0;
            infs += std::isinf(v) ? 1 : 0;
            if (v > 0 && v < min_positive) min_positive = v;
        }
        EXPECT_EQ(nans, shape.nan_codes);
        EXPECT_EQ(infs, shape.inf_codes);
        EXPECT_EQ(min_positive, shape.min_positive);
    }
}

TEST(FormatCodec, EveryCodeDecodesLikeTheReference) {
    std::vector<uint8_t> codes(256);
    for (unsigned c = 0; c < 256; ++c) codes[c] = static_cast<uint8_t>(c);
    for (Format8 format : kFormats) {
        std::vector<float> row(256);
        decode_row(format, codes.data(), row.data(), 256);
        for (unsigned c = 0; c < 256; ++c) {
            const double want = moedist_ref::format8_value(format, static_cast<uint8_t>(c));
            const float got = decode(format, static_cast<uint8_t>(c));
            if (std::isnan(want)) {
                EXPECT_TRUE(std::isnan(got)) << moedist_ref::format8_name(format) << " code " << c;
                EXPECT_TRUE(std::isnan(row[c]))
                    << moedist_ref::format8_name(format) << " code " << c;
            } else {
                // Bitwise, so fp8's 0x80 must be −0.0.
                EXPECT_EQ(hex(bits(got)), hex(bits(static_cast<float>(want))))
                    << moedist_ref::format8_name(format) << " code " << c;
                EXPECT_EQ(hex(bits(row[c])), hex(bits(got)))
                    << moedist_ref::format8_name(format) << " code " << c;
            }
        }
    }
}

TEST(FormatCodec, EveryHalfAndBfloat16EncodesLikeTheReference) {
    std::vector<float> halves(65536), bfloats(65536);
    for (uint32_t i = 0; i < 65536; ++i) {
        halves[i] = half_value(static_cast<uint16_t>(i));
        bfloats[i] = bfloat16_value(static_cast<uint16_t>(i));
    }
    for (Format8 format : kFormats) {
        EXPECT_EQ(encode_mismatches(format, halves), 0)
            << moedist_ref::format8_name(format) << " fp16";
        EXPECT_EQ(encode_mismatches(format, bfloats), 0)
            << moedist_ref::format8_name(format) << " bf16";
    }
}

TEST(FormatCodec, Binary32BoundariesEncodeLikeTheReference) {
    for (Format8 format : kFormats) {
        const std::vector<float> values = boundary_values(format);
        EXPECT_GT(values.size(), 1500u);
        EXPECT_EQ(encode_mismatches(format, values), 0) << moedist_ref::format8_name(format);
    }
}

// SPEC §5 pinned directly: saturation, NaN, zeros and the HiFloat8 class and denormal boundaries.
TEST(FormatCodec, HandPickedEncodings) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    struct Case {
        float in;
        uint8_t e4m3, e5m2, hif8;
    };
    // Worked by hand from the format definitions (comments: the rounding step that decides).
    const Case cases[] = {
        {0.0f, 0x00, 0x00, 0x00},
        {-0.0f, 0x80, 0x80, 0x00},
        {1.0f, 0x38, 0x3C, 0x08},
        {-1.0f, 0xB8, 0xBC, 0x88},
        {0.5f, 0x30, 0x38, 0x18},
        {0.125f, 0x20, 0x30, 0x38},
        {448.0f, 0x7E, 0x5F, 0x62},  // hif8: 1.75·2^8 ties between 1.5·2^8 and 2^9 -> 2^9
        {464.0f, 0x7E, 0x5F, 0x62},  // e4m3: tie 448 (mantissa 110, even) / would-be 480
        {480.0f, 0x7E, 0x60, 0x62},  // e4m3: would-be 480 saturates; e5m2: tie 448 / 512 (even)
        {-1e9f, 0xFE, 0xFB, 0xEE},
        {57344.0f, 0x7E, 0x7B, 0x6E},
        {61440.0f, 0x7E, 0x7B, 0x6E},  // e5m2: ties to even = Inf code -> saturates
        {32768.0f, 0x7E, 0x78, 0x6E},
        {49152.0f, 0x7E, 0x7A, 0x6E},  // hif8: the Inf code's would-be value saturates
        {40960.0f, 0x7E, 0x79, 0x6E},
        {INFINITY, 0x7E, 0x7B, 0x6E},
        {-INFINITY, 0xFE, 0xFB, 0xEE},
        {nan, 0x7F, 0x7E, 0x80},
        {-nan, 0xFF, 0xFE, 0x80},
        {0x1p-9f, 0x01, 0x18, 0x72},
        {0x1p-10f, 0x00, 0x14, 0x74},  // e4m3: tie 0 / 2^-9 -> even 0
        {0x1.000002p-10f, 0x01, 0x14, 0x74},
        {-0x1p-10f, 0x80, 0x94, 0xF4},
        {0x1.8p-9f, 0x02, 0x1A, 0x73},  // e4m3: subnormal tie 1 / 2 -> 2
        {0x1.7p-8f, 0x03, 0x1E, 0x71},
        {0x1.cp-8f, 0x04, 0x1F, 0x5C},  // hif8: tie 1.5·2^-8 (E=-8, 1 bit) / 2^-7 (E=-7, 2 bits)
        {0x1.ep-4f, 0x1F, 0x30, 0x38},  // hif8: tie 1.75·2^-4 (2 bits) / 2^-3 (3 bits)
        {0x1.fp0f, 0x40, 0x40, 0x10},   // tie 1.875 / 2: even and away agree
        {1.0625f, 0x38, 0x3C, 0x09},    // tie 1 / 1.125: fp8 even -> 1, hif8 away -> 1.125
        {0x1.8p14f, 0x7E, 0x76, 0x6D},
        {0x1.bffffep14f, 0x7E, 0x77, 0x6D},
        {0x1.cp14f, 0x7E, 0x77, 0x6E},  // hif8: tie 1.5·2^14 / 2^15 -> max
        {0x1p-15f, 0x00, 0x02, 0x7E},
        {0x1.8p-16f, 0x00, 0x02, 0x7E},  // hif8: tie denormal 2^-16 / min normal 2^-15 -> 2^-15
        {0x1.7ffffep-16f, 0x00, 0x01, 0x07},
        {0x1p-16f, 0x00, 0x01, 0x07},
        {0x1p-17f, 0x00, 0x00, 0x06},    // e5m2: tie 0 / 2^-16 -> 0
        {0x1.8p-22f, 0x00, 0x00, 0x02},  // hif8: tie 2^-22 / 2^-21 -> 2^-21
        {0x1p-22f, 0x00, 0x00, 0x01},
        {0x1p-23f, 0x00, 0x00, 0x01},  // hif8: tie 0 / 2^-22 -> 2^-22
        {0x1.fffffep-24f, 0x00, 0x00, 0x00},
        {-0x1p-23f, 0x80, 0x80, 0x81},
        {0x1p-149f, 0x00, 0x00, 0x00},
        {-0x1p-149f, 0x80, 0x80, 0x00},
    };
    for (const Case& c : cases) {
        EXPECT_EQ(int{f32_to_fp8_e4m3(c.in)}, int{c.e4m3}) << "e4m3 " << c.in;
        EXPECT_EQ(int{f32_to_fp8_e5m2(c.in)}, int{c.e5m2}) << "e5m2 " << c.in;
        EXPECT_EQ(int{f32_to_hifloat8(c.in)}, int{c.hif8}) << "hifloat8 " << c.in;
    }
}

TEST(FormatCodec, HandPickedDecodings) {
    EXPECT_EQ(fp8_e4m3_to_f32(0x7E), 448.0f);
    EXPECT_EQ(fp8_e4m3_to_f32(0x01), 0x1p-9f);
    EXPECT_EQ(fp8_e4m3_to_f32(0x08), 0x1p-6f);
    EXPECT_EQ(bits(fp8_e4m3_to_f32(0x80)), 0x80000000u);
    EXPECT_TRUE(std::isnan(fp8_e4m3_to_f32(0x7F)));
    EXPECT_EQ(fp8_e5m2_to_f32(0x7B), 57344.0f);
    EXPECT_EQ(fp8_e5m2_to_f32(0xFC), -INFINITY);
    EXPECT_EQ(fp8_e5m2_to_f32(0x03), 0x1.8p-15f);
    EXPECT_TRUE(std::isnan(fp8_e5m2_to_f32(0x7D)));
    EXPECT_EQ(hifloat8_to_f32(0x6E), 32768.0f);
    EXPECT_EQ(hifloat8_to_f32(0xEE), -32768.0f);
    EXPECT_EQ(hifloat8_to_f32(0x6F), INFINITY);
    EXPECT_EQ(hifloat8_to_f32(0xEF), -INFINITY);
    EXPECT_EQ(hifloat8_to_f32(0x7E), 0x1p-15f);
    EXPECT_EQ(hifloat8_to_f32(0x7F), 0x1.8p-15f);
    EXPECT_EQ(hifloat8_to_f32(0x01), 0x1p-22f);
    EXPECT_EQ(hifloat8_to_f32(0x07), 0x1p-16f);
    EXPECT_EQ(hifloat8_to_f32(0x0F), 1.875f);
    EXPECT_EQ(hifloat8_to_f32(0x1F), 0x1.ep-1f);
    EXPECT_EQ(hifloat8_to_f32(0x38), 0.125f);
    EXPECT_EQ(bits(hifloat8_to_f32(0x00)), 0u);
    EXPECT_TRUE(std::isnan(hifloat8_to_f32(0x80)));
}

TEST(FormatCodec, E8M0) {
    for (unsigned b = 0; b < 256; ++b) {
        const double want = moedist_ref::e8m0_value(static_cast<uint8_t>(b));
        const float got = e8m0_to_f32(static_cast<uint8_t>(b));
        if (std::isnan(want)) {
            EXPECT_TRUE(std::isnan(got)) << b;
        } else {
            EXPECT_EQ(static_cast<double>(got), want) << b;
        }
    }
    EXPECT_EQ(bits(e8m0_to_f32(0)), 0x00400000u);
    EXPECT_EQ(e8m0_to_f32(127), 1.0f);
    EXPECT_EQ(e8m0_to_f32(254), 0x1p127f);
    std::vector<int> exponents = {INT_MIN, INT_MIN + 1, INT_MAX, INT_MAX - 1};
    for (int e = -300; e <= 300; ++e) exponents.push_back(e);
    for (int e : exponents)
        EXPECT_EQ(int{e8m0_from_exponent(e)}, int{moedist_ref::e8m0_from_biased(e)}) << e;
    EXPECT_EQ(int{e8m0_from_exponent(255)}, 254);
    EXPECT_EQ(int{e8m0_from_exponent(-1)}, 0);
    EXPECT_EQ(int{e8m0_from_exponent(131)}, 131);
}

// Rows of every length 0..80 at offsets 0..3 (vector bodies and tails) equal the scalars, and
// write nothing past n.
TEST(FormatCodec, RowsEqualScalarsAtEveryLengthAndOffset) {
    std::mt19937 rng(20240917);
    for (Format8 format : kFormats) {
        std::vector<float> values = boundary_values(format);
        for (int i = 0; i < 4096; ++i)
            values.push_back(std::bit_cast<float>(static_cast<uint32_t>(rng())));
        std::shuffle(values.begin(), values.end(), rng);
        std::vector<uint8_t> codes(values.size());
        for (std::size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<uint8_t>(rng());
        int64_t mismatches = 0;
        std::size_t start = 0;
        for (int64_t n = 0; n <= 80; ++n) {
            for (std::size_t offset = 0; offset < 4; ++offset) {
                start = (start + 97) % (values.size() - 100);
                std::vector<uint8_t> out(n + 8, 0xA5);
                encode_row(format, values.data() + start, out.data() + offset, n);
                std::vector<float> decoded(n + 8, -7.0f);
                decode_row(format, codes.data() + start, decoded.data() + offset, n);
                for (std::size_t i = 0; i < out.size(); ++i) {
                    const bool inside = i >= offset && i < offset + static_cast<std::size_t>(n);
                    const uint8_t want =
                        inside ? encode(format, values[start + i - offset]) : uint8_t{0xA5};
                    const float want_f = inside ? decode(format, codes[start + i - offset]) : -7.0f;
                    const bool same_f = bits(decoded[i]) == bits(want_f) ||
                                        (std::isnan(want_f) && std::isnan(decoded[i]));
                    if (out[i] != want || !same_f) ++mismatches;
                }
            }
        }
        EXPECT_EQ(mismatches, 0) << moedist_ref::format8_name(format);
    }
}

// ---- The two row paths (vector AVX-512 VBMI codecs, portable loops) against the scalars ----

DType dtype_of(Format8 format) {
    switch (format) {
        case Format8::kFp8E4M3:
            return DType::kFp8E4M3;
        case Format8::kFp8E5M2:
            return DType::kFp8E5M2;
        case Format8::kHiFloat8:
            return DType::kHiFloat8;
    }
    return DType::kFp8E4M3;
}

struct RowPath {
    const char* name;
    void (*encode)(Format8, const float*, uint8_t*, int64_t);
    void (*decode)(Format8, const uint8_t*, float*, int64_t);
};

void portable_encode(Format8 format, const float* src, uint8_t* dst, int64_t n) {
    switch (format) {
        case Format8::kFp8E4M3:
            return fp8_detail::f32_row_to_fp8_e4m3_portable(src, dst, n);
        case Format8::kFp8E5M2:
            return fp8_detail::f32_row_to_fp8_e5m2_portable(src, dst, n);
        case Format8::kHiFloat8:
            return fp8_detail::f32_row_to_hifloat8_portable(src, dst, n);
    }
}

void portable_decode(Format8 format, const uint8_t* src, float* dst, int64_t n) {
    switch (format) {
        case Format8::kFp8E4M3:
            return fp8_detail::fp8_e4m3_row_to_f32_portable(src, dst, n);
        case Format8::kFp8E5M2:
            return fp8_detail::fp8_e5m2_row_to_f32_portable(src, dst, n);
        case Format8::kHiFloat8:
            return fp8_detail::hifloat8_row_to_f32_portable(src, dst, n);
    }
}

void vector_encode(Format8 format, const float* src, uint8_t* dst, int64_t n) {
    vector_encode_row(dtype_of(format), src, dst, n);
}

void vector_decode(Format8 format, const uint8_t* src, float* dst, int64_t n) {
    vector_decode_row(dtype_of(format), src, dst, n);
}

// The paths this machine can run (the vector one needs AVX-512 VBMI and a non-sanitized build).
std::vector<RowPath> row_paths() {
    std::vector<RowPath> paths = {{"portable", portable_encode, portable_decode}};
    if (vector_codecs_available()) paths.push_back({"vector", vector_encode, vector_decode});
    return paths;
}

// Encodes `values` with `path` and counts the codes that differ from the scalar function's
// (reporting the first few).
int64_t path_encode_mismatches(const RowPath& path,
                               Format8 format,
                               const std::vector<float>& values) {
    std::vector<uint8_t> row(values.size());
    path.encode(format, values.data(), row.data(), static_cast<int64_t>(values.size()));
    int64_t mismatches = 0;
    for (std::size_t i = 0; i < values.size(); ++i) {
        const uint8_t want = encode(format, values[i]);
        if (row[i] == want) continue;
        if (++mismatches <= 10) {
            ADD_FAILURE() << path.name << " " << moedist_ref::format8_name(format) << " input "
                          << hex(bits(values[i])) << ": row " << int{row[i]} << " scalar "
                          << int{want};
        }
    }
    return mismatches;
}

TEST(FormatCodecRows, VectorPathIsAvailableOnAvx512VbmiMachines) {
    // Guards against the vector codecs silently dropping out (the other tests skip them then).
    if (!__builtin_cpu_supports("avx512vbmi")) GTEST_SKIP() << "no AVX-512 VBMI";
#if defined(MOEDIST_SANITIZED)
    GTEST_SKIP() << "sanitized build: portable rows only";
#endif
    EXPECT_TRUE(vector_codecs_available());
}

TEST(FormatCodecRows, EveryHalfAndBfloat16EncodesLikeTheScalars) {
    std::vector<float> values(2 * 65536);
    for (uint32_t i = 0; i < 65536; ++i) {
        values[i] = half_value(static_cast<uint16_t>(i));
        values[65536 + i] = bfloat16_value(static_cast<uint16_t>(i));
    }
    for (const RowPath& path : row_paths()) {
        for (Format8 format : kFormats) {
            EXPECT_EQ(path_encode_mismatches(path, format, values), 0)
                << path.name << " " << moedist_ref::format8_name(format);
        }
    }
}

// Every format's boundaries and midpoints (one binary32 ulp either side too), for all three
// formats' tables (so each encoder also sees the others' edges), specials, and binary32
// subnormals, zeros, Inf and NaNs with payloads.
TEST(FormatCodecRows, Binary32BoundariesAndSpecialsEncodeLikeTheScalars) {
    std::vector<float> values;
    for (Format8 format : kFormats) {
        const std::vector<float> b = boundary_values(format);
        values.insert(values.end(), b.begin(), b.end());
    }
    for (uint32_t u : {0x00000000u, 0x00000001u, 0x00000002u, 0x003FFFFFu, 0x00400000u, 0x007FFFFFu,
                       0x00800000u, 0x00800001u, 0x7F7FFFFFu, 0x7F800000u, 0x7F800001u, 0x7FBFFFFFu,
                       0x7FC00000u, 0x7FC00001u, 0x7FFFFFFFu, 0x33800000u, 0x337FFFFFu, 0x33FFFFFFu,
                       0x34000000u, 0x34000001u, 0x343FFFFFu, 0x34400000u, 0x347FFFFFu, 0x34800000u,
                       0x46FFFFFFu, 0x47000000u, 0x47000001u, 0x473FFFFFu, 0x47400000u}) {
        values.push_back(std::bit_cast<float>(u));
        values.push_back(std::bit_cast<float>(u | 0x80000000u));
    }
    // Every binary32 exponent with a few mantissas (all binades, both signs).
    for (uint32_t e = 0; e < 256; ++e) {
        for (uint32_t m : {0u,
                           1u,
                           0x0FFFFFu,
                           0x100000u,
                           0x180000u,
                           0x1FFFFFu,
                           0x200000u,
                           0x300000u,
                           0x3FFFFFu,
                           0x400000u,
                           0x500000u,
                           0x7FFFFFu}) {
            values.push_back(std::bit_cast<float>((e << 23) | m));
            values.push_back(std::bit_cast<float>(0x80000000u | (e << 23) | m));
        }
    }
    for (const RowPath& path : row_paths()) {
        for (Format8 format : kFormats) {
            EXPECT_EQ(path_encode_mismatches(path, format, values), 0)
                << path.name << " " << moedist_ref::format8_name(format);
        }
    }
}

// A strided sweep over all 2^32 binary32 patterns (every 4099th; a prime, so the low mantissa bits
// vary residue is hit) plus everything near each format's rounding decisions within the low
// mantissa bits. The DISABLED_ test below runs all 2^32 (minutes).
void sweep_binary32(uint64_t stride) {
    for (const RowPath& path : row_paths()) {
        std::vector<float> chunk;
        std::array<int64_t, 3> mismatches{};
        for (uint64_t start = 0; start < (uint64_t{1} << 32); start += stride << 16) {
            chunk.clear();
            for (uint64_t u = start; u < start + (stride << 16) && u < (uint64_t{1} << 32);
                 u += stride) {
                chunk.push_back(std::bit_cast<float>(static_cast<uint32_t>(u)));
            }
            for (std::size_t f = 0; f < 3; ++f) {
                if (mismatches[f] < 10)
                    mismatches[f] += path_encode_mismatches(path, kFormats[f], chunk);
            }
        }
        for (std::size_t f = 0; f < 3; ++f)
            EXPECT_EQ(mismatches[f], 0)
                << path.name << " " << moedist_ref::format8_name(kFormats[f]);
    }
}

TEST(FormatCodecRows, StridedBinary32SweepEncodesLikeTheScalars) { sweep_binary32(4099); }

TEST(FormatCodecRows, DISABLED_EveryBinary32EncodesLikeTheScalars) { sweep_binary32(1); }

// Lengths 0..200 (every tail 1..63 of the 16- and 64-lane loops) at offsets 0..3: the codes equal
// the scalars' and nothing outside [0, n) is read (the source is followed by NaN poison that the
// rows must not write anywhere) or written.
TEST(FormatCodecRows, EveryLengthAndOffsetEqualsTheScalarsAndStaysInBounds) {
    std::mt19937 rng(7);
    std::vector<float> pool;
    for (Format8 format : kFormats) {
        const std::vector<float> b = boundary_values(format);
        pool.insert(pool.end(), b.begin(), b.end());
    }
    for (int i = 0; i < 2000; ++i)
        pool.push_back(std::bit_cast<float>(static_cast<uint32_t>(rng())));
    std::shuffle(pool.begin(), pool.end(), rng);
    for (const RowPath& path : row_paths()) {
        for (Format8 format : kFormats) {
            int64_t mismatches = 0;
            std::size_t start = 0;
            for (int64_t n = 0; n <= 200; ++n) {
                for (std::size_t offset = 0; offset < 4; ++offset) {
                    start = (start + 131) % (pool.size() - 300);
                    std::vector<float> src(offset + static_cast<std::size_t>(n) + 70, NAN);
                    std::copy_n(pool.begin() + static_cast<std::ptrdiff_t>(start),
                                n,
                                src.begin() + static_cast<std::ptrdiff_t>(offset));
                    std::vector<uint8_t> out(static_cast<std::size_t>(n) + 70, 0xA5);
                    path.encode(format, src.data() + offset, out.data() + offset, n);
                    std::vector<uint8_t> codes(offset + static_cast<std::size_t>(n) + 70);
                    for (auto& c : codes) c = static_cast<uint8_t>(rng());
                    std::vector<float> decoded(static_cast<std::size_t>(n) + 70, -7.0f);
                    path.decode(format, codes.data() + offset, decoded.data() + offset, n);
                    for (std::size_t i = 0; i < out.size(); ++i) {
                        const bool inside = i >= offset && i < offset + static_cast<std::size_t>(n);
                        const uint8_t want = inside ? encode(format, src[i]) : uint8_t{0xA5};
                        const float want_f = inside ? decode(format, codes[i]) : -7.0f;
                        if (out[i] != want || bits(decoded[i]) != bits(want_f)) {
                            if (++mismatches <= 10) {
                                ADD_FAILURE()
                                    << path.name << " " << moedist_ref::format8_name(format)
                                    << " n " << n << " offset " << offset << " i " << i;
                            }
                        }
                    }
                }
            }
            EXPECT_EQ(mismatches, 0) << path.name << " " << moedist_ref::format8_name(format);
        }
    }
}

// Every code, bit for bit (NaNs included: the scalars give the canonical NaN with its sign, and
// HiFloat8 0x80 the positive one), in every position of a 64-code vector.
TEST(FormatCodecRows, EveryCodeDecodesLikeTheScalarsInEveryLane) {
    std::vector<uint8_t> codes(256 * 65);
    for (std::size_t i = 0; i < codes.size(); ++i)
        codes[i] = static_cast<uint8_t>(i % 256 + i / 256);
    for (const RowPath& path : row_paths()) {
        for (Format8 format : kFormats) {
            std::vector<float> out(codes.size());
            path.decode(format, codes.data(), out.data(), static_cast<int64_t>(codes.size()));
            int64_t mismatches = 0;
            for (std::size_t i = 0; i < codes.size(); ++i) {
                if (bits(out[i]) != bits(decode(format, codes[i])) && ++mismatches <= 10) {
                    ADD_FAILURE() << path.name << " " << moedist_ref::format8_name(format)
                                  << " code " << int{codes[i]} << " got " << hex(bits(out[i]));
                }
            }
            EXPECT_EQ(mismatches, 0) << path.name << " " << moedist_ref::format8_name(format);
        }
    }
}

}  // namespace
}  // namespace moedist::quant
