// aclnn/opdev/fp16_t.h — op::fp16_t, an IEEE binary16 value as CANN's opdev header provides it.
//
// Header-only, C++11 or later. Layout: exactly the 16-bit encoding in `val` (sizeof == 2, trivially
// copyable), so a std::vector<op::fp16_t> is a device-ready fp16 buffer.
// Conversions in are numeric and round to nearest even (overflow -> ±inf, gradual subnormals, a NaN
// -> 0x7E00 with its sign); conversions out are exact. As in CANN, the constructor taking a
// uint16_t stores that raw encoding, while every other arithmetic type (int, float, double, ...)
// converts by value.
#ifndef MOEDIST_ACLNN_OPDEV_FP16_T_H_
#define MOEDIST_ACLNN_OPDEV_FP16_T_H_

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace op {

namespace fp16_detail {

// binary64 -> binary16, round to nearest even. Exact for every binary32 input (float -> double is
// exact), so one rounding happens for float and double alike.
inline uint16_t from_double(double value) {
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof(bits));
    const uint16_t sign = static_cast<uint16_t>((bits >> 48) & 0x8000u);
    const uint64_t magnitude = bits & 0x7FFFFFFFFFFFFFFFull;
    const uint64_t exp_field = magnitude >> 52;
    if (exp_field == 0x7FF) {
        return static_cast<uint16_t>(sign | ((magnitude << 12) != 0 ? 0x7E00u : 0x7C00u));
    }
    if (exp_field == 0) return sign;  // ±0 and binary64 subnormals (< 2^-1022) round to ±0
    const int exponent = static_cast<int>(exp_field) - 1023;
    if (exponent > 15) return static_cast<uint16_t>(sign | 0x7C00u);
    const uint64_t significand = (magnitude & 0xFFFFFFFFFFFFFull) | (1ull << 52);
    // Units of the result: 2^(max(exponent, -14) - 10); shift drops the bits below one unit.
    const int unit_exponent = exponent < -14 ? -14 : exponent;
    const int shift = 42 + (unit_exponent - exponent);
    if (shift > 63) return sign;  // below half of the smallest subnormal
    uint64_t q = significand >> shift;
    const uint64_t rest = significand & ((1ull << shift) - 1);
    const uint64_t half = 1ull << (shift - 1);
    if (rest > half || (rest == half && (q & 1u) != 0)) ++q;
    // Normal: ((E - 1) << 10) + q with q in [2^10, 2^11]; a carry to 2^11 moves to the next binade
    // (and to 0x7C00 = inf past the largest); subnormal: q itself (2^10 becomes the smallest
    // normal).
    const uint64_t encoded = (static_cast<uint64_t>(unit_exponent + 14) << 10) + q;
    return static_cast<uint16_t>(sign | (encoded >= 0x7C00u ? 0x7C00u : encoded));
}

// binary16 -> binary32, exact (a NaN keeps its payload and sign).
inline float to_float(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp_field = (h >> 10) & 0x1Fu;
    uint32_t mantissa = h & 0x3FFu;
    uint32_t bits = 0;
    if (exp_field == 0x1F) {
        bits = sign | 0x7F800000u | (mantissa << 13);
    } else if (exp_field != 0) {
        bits = sign | ((exp_field + 112u) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        bits = sign;
    } else {
        // Subnormal: normalise m·2^-24 so the leading 1 reaches bit 10.
        uint32_t exponent = 113;  // biased binary32 exponent of 2^-14
        while ((mantissa & 0x400u) == 0) {
            mantissa <<= 1;
            --exponent;
        }
        bits = sign | (exponent << 23) | ((mantissa & 0x3FFu) << 13);
    }
    float result = 0.0f;
    std::memcpy(&result, &bits, sizeof(result));
    return result;
}

template <typename T>
struct converts_by_value
    : std::integral_constant<bool,
                             std::is_arithmetic<T>::value && !std::is_same<T, uint16_t>::value> {};

}  // namespace fp16_detail

struct fp16_t {
    uint16_t val;

    fp16_t() : val(0) {}
    // The raw binary16 encoding.
    fp16_t(const uint16_t& bits) : val(bits) {}
    // By value, rounded to nearest even.
    template <typename T,
              typename std::enable_if<fp16_detail::converts_by_value<T>::value, int>::type = 0>
    fp16_t(const T& value) : val(fp16_detail::from_double(static_cast<double>(value))) {}

    fp16_t(const fp16_t&) = default;
    fp16_t& operator=(const fp16_t&) = default;

    // Assignment from any arithmetic value (uint16_t included) converts by value.
    template <typename T, typename std::enable_if<std::is_arithmetic<T>::value, int>::type = 0>
    fp16_t& operator=(const T& value) {
        val = fp16_detail::from_double(static_cast<double>(value));
        return *this;
    }

    operator float() const { return fp16_detail::to_float(val); }
    float toFloat() const { return fp16_detail::to_float(val); }
    double toDouble() const { return static_cast<double>(fp16_detail::to_float(val)); }
};

static_assert(sizeof(fp16_t) == 2, "op::fp16_t must be the 16-bit encoding");
static_assert(std::is_trivially_copyable<fp16_t>::value, "op::fp16_t must be trivially copyable");

}  // namespace op

#endif  // MOEDIST_ACLNN_OPDEV_FP16_T_H_
