// Scalar conversions between binary32 and the 16-bit float formats, bit-exact per docs/contract.md §5:
// round to nearest even, subnormals kept, NaN -> the target's canonical quiet NaN with the sign.
#pragma once

#include <bit>
#include <cstdint>

namespace moedist::quant {

inline uint32_t f32_bits(float value) { return std::bit_cast<uint32_t>(value); }
inline float bits_f32(uint32_t bits) { return std::bit_cast<float>(bits); }

inline float bf16_to_f32(uint16_t bits) { return bits_f32(static_cast<uint32_t>(bits) << 16); }

inline uint16_t f32_to_bf16(float value) {
    const uint32_t u = f32_bits(value);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u)
        return static_cast<uint16_t>((u >> 16 & 0x8000u) | 0x7FC0u);
    const uint32_t rounded =
        u + 0x7FFFu + ((u >> 16) & 1u);  // carries into the exponent as RNE asks
    return static_cast<uint16_t>(rounded >> 16);
}

inline float f16_to_f32(uint16_t bits) {
    const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
    const uint32_t exponent = (bits >> 10) & 0x1Fu;
    const uint32_t mantissa = bits & 0x3FFu;
    if (exponent == 0x1Fu) return bits_f32(sign | 0x7F800000u | (mantissa << 13));
    if (exponent != 0) return bits_f32(sign | ((exponent + 112u) << 23) | (mantissa << 13));
    // Zero or subnormal: mantissa * 2^-24 is exact in binary32.
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return sign ? -magnitude : magnitude;
}

inline uint16_t f32_to_f16(float value) {
    const uint32_t u = f32_bits(value);
    const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
    const uint32_t abs = u & 0x7FFFFFFFu;
    if (abs > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u);   // NaN
    if (abs >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // >= 65520: Inf
    if (abs >= 0x38800000u) {                                              // normal half
        const uint32_t rounded = abs + 0xFFFu + ((abs >> 13) & 1u);
        return static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
    }
    // Subnormal half (or zero): the value in units of 2^-24, rounded to nearest even.
    const uint32_t exponent = abs >> 23;
    if (exponent < 102u) return sign;  // below 2^-25: rounds to zero
    const uint32_t mantissa = (abs & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126u - exponent;  // 14..24
    const uint32_t quotient = mantissa >> shift;
    const uint32_t remainder = mantissa & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    const uint32_t up = (remainder > half || (remainder == half && (quotient & 1u))) ? 1u : 0u;
    return static_cast<uint16_t>(sign | (quotient + up));
}

}  // namespace moedist::quant
