#include "format_reference.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace moedist_ref {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

struct Table {
    std::array<double, 256> value{};
    std::array<int, 256> times_defined{};  // every code must be defined exactly once

    void define(unsigned code, double v) {
        value[code] = v;
        ++times_defined[code];
    }
};

// An IEEE-style binary format with `exponent_bits`, `mantissa_bits` and `bias`:
// exponent field 0 -> subnormal m·2^(1 − bias − mantissa_bits),
// otherwise (1 + m/2^mantissa_bits)·2^(e − bias).
// `top_is_special` reserves the all-ones exponent for Inf (m = 0) and NaN (m != 0) as IEEE does;
// otherwise only the all-ones exponent with all-ones mantissa is NaN (the "fn" formats).
Table build_ieee_like(int exponent_bits, int mantissa_bits, int bias, bool top_is_special) {
    Table table;
    const int exponent_top = (1 << exponent_bits) - 1;
    const int mantissa_top = (1 << mantissa_bits) - 1;
    for (int s = 0; s <= 1; ++s) {
        for (int e = 0; e <= exponent_top; ++e) {
            for (int m = 0; m <= mantissa_top; ++m) {
                const unsigned code = static_cast<unsigned>((s << 7) | (e << mantissa_bits) | m);
                double magnitude = 0;
                if (e == exponent_top && top_is_special) {
                    magnitude = m == 0 ? kInf : kNaN;
                } else if (e == exponent_top && m == mantissa_top) {
                    magnitude = kNaN;
                } else if (e == 0) {
                    magnitude = std::ldexp(static_cast<double>(m), 1 - bias - mantissa_bits);
                } else {
                    magnitude = std::ldexp(1.0 + std::ldexp(static_cast<double>(m), -mantissa_bits),
                                           e - bias);
                }
                table.define(code, s ? -magnitude : magnitude);
            }
        }
    }
    return table;
}

// HiFloat8, generated class by class: the code is the concatenation S | dot | exponent | mantissa.
Table build_hifloat8() {
    struct DotClass {
        unsigned dot;  // the prefix bits
        int dot_length;
        int d;  // exponent width: sign + (d − 1) magnitude bits, implicit leading 1
        int mantissa_bits;
    };
    const DotClass classes[] = {
        {0b11, 2, 4, 1}, {0b10, 2, 3, 2}, {0b01, 2, 2, 3}, {0b001, 3, 1, 3}, {0b0001, 4, 0, 3}};
    Table table;
    for (unsigned s = 0; s <= 1; ++s) {
        const double sign = s ? -1.0 : 1.0;
        for (const DotClass& c : classes) {
            const unsigned prefix = (s << 7) | (c.dot << (7 - c.dot_length));
            if (c.d == 0) {
                for (unsigned m = 0; m < (1u << c.mantissa_bits); ++m) {
                    const double significand =
                        1.0 + std::ldexp(static_cast<double>(m), -c.mantissa_bits);
                    table.define(prefix | m, sign * significand);
                }
                continue;
            }
            for (unsigned exponent_negative = 0; exponent_negative <= 1; ++exponent_negative) {
                for (unsigned field = 0; field < (1u << (c.d - 1)); ++field) {
                    const int magnitude = (1 << (c.d - 1)) + static_cast<int>(field);
                    const int exponent = exponent_negative ? -magnitude : magnitude;
                    const unsigned exponent_bits = (exponent_negative << (c.d - 1)) | field;
                    for (unsigned m = 0; m < (1u << c.mantissa_bits); ++m) {
                        const unsigned code = prefix | (exponent_bits << c.mantissa_bits) | m;
                        const double significand =
                            1.0 + std::ldexp(static_cast<double>(m), -c.mantissa_bits);
                        table.define(code, sign * std::ldexp(significand, exponent));
                    }
                }
            }
        }
        // dot 0000: denormals 2^(M − 23) for M = 1..7; M = 0 is zero (S = 0) or NaN (S = 1).
        table.define(s << 7, s ? kNaN : 0.0);
        for (unsigned m = 1; m <= 7; ++m)
            table.define((s << 7) | m, sign * std::ldexp(1.0, static_cast<int>(m) - 23));
    }
    // The would-be ±1.5·2^15 codes are ±Inf.
    for (unsigned code : {0x6Fu, 0xEFu}) {
        if (table.value[code] != (code & 0x80u ? -1.0 : 1.0) * 49152.0) std::abort();
        table.value[code] = code & 0x80u ? -kInf : kInf;
    }
    return table;
}

Table checked(Table table) {
    for (int n : table.times_defined) {
        if (n != 1) std::abort();  // a generator bug: a code left out or defined twice
    }
    return table;
}

const Table& table_of(Format8 format) {
    static const Table e4m3 = checked(build_ieee_like(4, 3, 7, false));
    static const Table e5m2 = checked(build_ieee_like(5, 2, 15, true));
    static const Table hif8 = checked(build_hifloat8());
    return format == Format8::kFp8E4M3 ? e4m3 : (format == Format8::kFp8E5M2 ? e5m2 : hif8);
}

bool is_finite_code(const Table& table, unsigned code) { return std::isfinite(table.value[code]); }

}  // namespace

const char* format8_name(Format8 format) {
    switch (format) {
        case Format8::kFp8E4M3:
            return "fp8_e4m3fn";
        case Format8::kFp8E5M2:
            return "fp8_e5m2";
        case Format8::kHiFloat8:
            return "hifloat8";
    }
    return "?";
}

double format8_value(Format8 format, uint8_t code) { return table_of(format).value[code]; }

std::vector<double> format8_finite_values(Format8 format) {
    const Table& table = table_of(format);
    std::vector<double> values;
    for (unsigned code = 0; code < 256; ++code) {
        if (is_finite_code(table, code))
            values.push_back(table.value[code] == 0 ? 0.0 : table.value[code]);
    }
    std::sort(values.begin(), values.end());
    values.erase(std::unique(values.begin(), values.end()), values.end());
    return values;
}

uint8_t format8_encode(Format8 format, float value) {
    const Table& table = table_of(format);
    const bool negative = std::signbit(value);
    const bool fp8 = format != Format8::kHiFloat8;
    if (std::isnan(value)) {
        if (!fp8) return 0x80;
        return static_cast<uint8_t>((negative ? 0x80u : 0u) |
                                    (format == Format8::kFp8E4M3 ? 0x7Fu : 0x7Eu));
    }
    const double target = std::fabs(static_cast<double>(value));  // exact

    // Among the non-negative finite codes: the largest, and the neighbours below and above target.
    int max_code = -1, below = -1, above = -1;
    for (unsigned code = 0; code < 128; ++code) {
        if (!is_finite_code(table, code)) continue;
        const double v = table.value[code];
        if (max_code < 0 || v > table.value[static_cast<std::size_t>(max_code)])
            max_code = static_cast<int>(code);
        if (v <= target && (below < 0 || v > table.value[static_cast<std::size_t>(below)]))
            below = static_cast<int>(code);
        if (v >= target && (above < 0 || v < table.value[static_cast<std::size_t>(above)]))
            above = static_cast<int>(code);
    }
    int chosen = 0;
    if (target > table.value[static_cast<std::size_t>(max_code)]) {
        chosen = max_code;  // overflow and Inf saturate
    } else if (table.value[static_cast<std::size_t>(below)] ==
               table.value[static_cast<std::size_t>(above)]) {
        chosen = below;
    } else {
        // lo + hi and the halving are exact in double for these short significands.
        const double midpoint = (table.value[static_cast<std::size_t>(below)] +
                                 table.value[static_cast<std::size_t>(above)]) /
                                2;
        if (target < midpoint) {
            chosen = below;
        } else if (target > midpoint) {
            chosen = above;
        } else if (fp8) {
            chosen = (below & 1) == 0 ? below : above;  // even last mantissa bit
        } else {
            chosen = above;  // away from zero
        }
    }
    if (!fp8 && table.value[static_cast<std::size_t>(chosen)] == 0) return 0x00;
    return static_cast<uint8_t>((negative ? 0x80 : 0) | chosen);
}

double e8m0_value(uint8_t code) {
    return code == 0xFF ? kNaN : std::ldexp(1.0, static_cast<int>(code) - 127);
}

uint8_t e8m0_from_biased(int biased) { return static_cast<uint8_t>(std::clamp(biased, 0, 254)); }

}  // namespace moedist_ref
