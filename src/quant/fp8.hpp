// Scalar conversions between binary32 and the 8-bit formats of docs/contract.md §5 (fp8 e4m3fn, fp8 e5m2,
// HiFloat8, E8M0), bit-exact, plus row helpers (fp8.cpp). Stateless; integer bit arithmetic only,
// so neither the FP rounding mode nor FTZ/DAZ can change a result.
//
// fp8 (OCP): round to nearest even from binary32; finite overflow and ±Inf saturate to ±maxV
// (e4m3fn 448 = 0x7E/0xFE, e5m2 57344 = 0x7B/0xFB), including values that would round up past maxV
// (e4m3 (464, 480] would give the NaN code's 480, e5m2 [61440, 65536) the Inf code: both -> maxV;
// 464 itself ties to 448, whose mantissa 110 is the even one); subnormals gradual; −0 and negative
// underflow keep the sign (0x80); NaN -> e4m3fn 0x7F | sign, e5m2 0x7E | sign.
//
// HiFloat8 (arXiv 2409.16626; docs/quantization.md): byte S | dot | exp | mant.
//
//   code (after S)   dot   D  exponent field            E             mantissa  values
//   11 s eee m       11    4  s + 3 bits, |E| = 8+eee   ±8..±15       1 bit     2^E·1.m
//   10 s ee mm       10    3  s + 2 bits, |E| = 4+ee    ±4..±7        2 bits    2^E·1.mm
//   01 s e mmm       01    2  s + 1 bit,  |E| = 2+e     ±2, ±3        3 bits    2^E·1.mmm
//   001 s mmm        001   1  s,          |E| = 1       ±1            3 bits    2^E·1.mmm
//   0001 mmm         0001  0  none                      0             3 bits    1.mmm
//   0000 MMM         0000  denormal, M = 1..7                                   2^(M−23)
//
//   The exponent sign bit s is 1 for negative E. Specials: 0x00 = 0, 0x80 = NaN, 0x6F/0xEF = ±Inf
//   (the would-be ±1.5·2^15); max finite 0x6E = 32768; min normal 0x7E = 2^−15; min denormal
//   0x01 = 2^−22. There is no −0.
//
// Encoding rounds to the nearest member of the union of all classes; an exact tie (the arithmetic
// midpoint of two neighbours) goes away from zero. In every binade [2^e, 2^(e+1)) the members are
// exactly class e's values plus 2^(e+1) (which every class above holds with mantissa 0), so this is
// "round the binary32 significand to class e's mantissa width, ties away" with the carry landing on
// 2^(e+1) — across a class boundary too. Denormal binades (e = −22..−16) keep 0 mantissa bits: the
// neighbours 2^e and 2^(e+1) have midpoint 1.5·2^e. Below 2^−22 the neighbours are 0 and 2^−22 with
// midpoint 2^−23, so [2^−23, 2^−22) gives 0x01 and |v| < 2^−23 gives 0x00. |v| >= 32768 and ±Inf
// give ±32768 (0x6E/0xEE); ±0 and any result of magnitude 0 give 0x00; NaN gives 0x80.
//
// E8M0 (OCP MX scale): value 2^(b − 127), b = 0..254; 0xFF = NaN.
#pragma once

#include <array>
#include <cstdint>

#include "quant/float_bits.hpp"

namespace moedist::quant {

namespace fp8_detail {

// condition ? x : y as a bit blend. GCC's if-conversion gives up on long chains of ?: (and on
// selects between differently narrowed values), which would keep the row loops scalar.
inline uint32_t blend(bool condition, uint32_t x, uint32_t y) {
    const uint32_t mask = 0u - static_cast<uint32_t>(condition);
    return (x & mask) | (y & ~mask);
}

// Magnitude code of a binary32 magnitude `a` (bits, sign cleared) in an OCP fp8 format with
// kMant mantissa bits and exponent bias kBias, round to nearest even. Meaningful for finite
// a <= the format's max (the caller's blends replace other lanes). Both paths are computed so a
// vectorized loop stays branch-free.
template <uint32_t kMant, uint32_t kBias>
inline uint32_t fp8_round_magnitude(uint32_t a) {
    constexpr uint32_t kShift = 23u - kMant;
    // Normal result: round the significand at bit kShift (RNE), then rebias the exponent.
    const uint32_t rne = a + ((1u << (kShift - 1u)) - 1u) + ((a >> kShift) & 1u);
    const uint32_t normal = (rne - ((127u - kBias) << 23)) >> kShift;
    // Subnormal result: the value in units of 2^(1 − bias − mant), RNE. A carry to 2^mant is the
    // min normal's code, as wanted. Any shift >= 25 gives 0 for a 24-bit significand.
    const uint32_t be = a >> 23;
    const uint32_t significand = (a & 0x7FFFFFu) | 0x800000u;
    // 1..25; normal-range a (whose lanes the blend drops) would give 0 or wrap: clamped to 25.
    const uint32_t raw_shift = (151u - kBias - kMant) - be;
    const uint32_t shift = raw_shift - 1u > 24u ? 25u : raw_shift;
    const uint32_t sub =
        (significand + ((1u << (shift - 1u)) - 1u) + ((significand >> shift) & 1u)) >> shift;
    constexpr uint32_t kMinNormalBits = (128u - kBias) << 23;
    return blend(a < kMinNormalBits, sub, normal);
}

// HiFloat8 code of a binary32 magnitude `a` in [2^−22, 2^15), rounded ties away (any other `a`
// is harmless: its lanes are replaced by the caller's blends).
inline uint32_t hifloat8_round_magnitude(uint32_t a) {
    const int32_t e = static_cast<int32_t>(a >> 23) - 127;
    const uint32_t ae = static_cast<uint32_t>(e < 0 ? -e : e);
    // Mantissa bits class e keeps: 3 for |E| <= 3, 2 for 4..7, 1 for 8..15, 0 for denormals.
    const uint32_t keep = blend(e < -15, 0u, 3u - (ae > 3) - (ae > 7));
    const uint32_t shift = 23u - keep;
    const uint32_t r = (a + (1u << (shift - 1u))) & ~((1u << shift) - 1u);  // ties away from zero
    const uint32_t mant = (r & 0x7FFFFFu) >> shift;  // 0 after a carry into the next binade
    // The code of 2^e2, e2 the exponent after rounding.
    const int32_t e2 = static_cast<int32_t>(r >> 23) - 127;
    const uint32_t a2 = static_cast<uint32_t>(e2 < 0 ? -e2 : e2);
    const uint32_t es = blend(e2 < 0, 0x10u, 0u);  // exponent sign bit of the D = 2..4 classes
    // D = k + 1 for |E| >= 2: dot k (01, 10, 11) | es | field |E| − 2^k | (4 − k) mantissa bits.
    const uint32_t k = 1u + (a2 > 3) + (a2 > 7);
    const uint32_t wide = (k << 5) | es | ((a2 - (1u << k)) << (4u - k));
    const uint32_t narrow = blend(a2 == 0, 0x08u, 0x10u | (es >> 1));  // D = 0 or D = 1
    const uint32_t normal = blend(a2 >= 2, wide, narrow);
    return blend(e2 < -15, static_cast<uint32_t>(e2 + 23), normal) | mant;  // denormal M or normal
}

// binary32 bits of a HiFloat8 code, from the layout table above.
constexpr uint32_t hifloat8_bits(uint32_t c) {
    const uint32_t sign = (c & 0x80u) << 24;
    const uint32_t t = c & 0x7Fu;
    if (t == 0) return c == 0 ? 0u : 0x7FC00000u;  // 0x00 zero, 0x80 NaN
    if (t == 0x6F) return sign | 0x7F800000u;      // ±Inf
    int32_t e = 0;
    uint32_t mant_bits = 3;
    if (t >= 0x60) {
        e = 8 + static_cast<int32_t>((t >> 1) & 7u), mant_bits = 1;
    } else if (t >= 0x40) {
        e = 4 + static_cast<int32_t>((t >> 2) & 3u), mant_bits = 2;
    } else if (t >= 0x20) {
        e = 2 + static_cast<int32_t>((t >> 3) & 1u);
    } else if (t >= 0x10) {
        e = 1;
    } else if (t < 0x08) {
        return sign | ((t - 23u + 127u) << 23);  // denormal 2^(M − 23)
    }
    const bool exp_negative = t >= 0x10 && (t & (t >= 0x20 ? 0x10u : 0x08u)) != 0;
    if (exp_negative) e = -e;
    const uint32_t mant = t & ((1u << mant_bits) - 1u);
    return sign | (static_cast<uint32_t>(e + 127) << 23) | (mant << (23u - mant_bits));
}

constexpr std::array<uint32_t, 256> make_hifloat8_table() {
    std::array<uint32_t, 256> table{};
    for (uint32_t c = 0; c < 256; ++c) table[c] = hifloat8_bits(c);
    return table;
}

inline constexpr std::array<uint32_t, 256> kHiFloat8Bits = make_hifloat8_table();

}  // namespace fp8_detail

inline float fp8_e4m3_to_f32(uint8_t code) {
    using fp8_detail::blend;
    const uint32_t sign = static_cast<uint32_t>(code & 0x80u) << 24;
    const uint32_t exponent = (code >> 3) & 0xFu;
    const uint32_t mant = code & 7u;
    const uint32_t normal = ((exponent + 120u) << 23) | (mant << 20);
    // Subnormal mant·2^−9 normalized: the leading bit p of mant becomes the implicit one.
    const uint32_t p = (mant >= 2) + (mant >= 4);
    const uint32_t sub =
        blend(mant == 0, 0u, ((118u + p) << 23) | ((mant << (23u - p)) & 0x7FFFFFu));
    const uint32_t finite = blend(exponent == 0, sub, normal);
    return bits_f32(sign | blend((code & 0x7Fu) == 0x7Fu, 0x7FC00000u, finite));
}

inline float fp8_e5m2_to_f32(uint8_t code) {
    using fp8_detail::blend;
    const uint32_t sign = static_cast<uint32_t>(code & 0x80u) << 24;
    const uint32_t exponent = (code >> 2) & 0x1Fu;
    const uint32_t mant = code & 3u;
    const uint32_t normal = ((exponent + 112u) << 23) | (mant << 21);
    // Subnormal mant·2^−16 normalized: the leading bit p of mant becomes the implicit one.
    const uint32_t p = mant >= 2;
    const uint32_t sub =
        blend(mant == 0, 0u, ((111u + p) << 23) | ((mant << (23u - p)) & 0x7FFFFFu));
    const uint32_t special = blend(mant == 0, 0x7F800000u, 0x7FC00000u);  // Inf or NaN
    const uint32_t finite = blend(exponent == 0, sub, normal);
    return bits_f32(sign | blend(exponent == 0x1Fu, special, finite));
}

inline uint8_t f32_to_fp8_e4m3(float value) {
    const uint32_t u = f32_bits(value);
    const uint32_t sign = (u >> 24) & 0x80u;
    const uint32_t a = u & 0x7FFFFFFFu;
    uint32_t code = fp8_detail::fp8_round_magnitude<3, 7>(a);
    code = fp8_detail::blend(a > 0x43E00000u, 0x7Eu, code);  // above 448 (Inf too): saturate
    code = fp8_detail::blend(a > 0x7F800000u, 0x7Fu, code);  // NaN
    return static_cast<uint8_t>(sign | code);
}

inline uint8_t f32_to_fp8_e5m2(float value) {
    const uint32_t u = f32_bits(value);
    const uint32_t sign = (u >> 24) & 0x80u;
    const uint32_t a = u & 0x7FFFFFFFu;
    uint32_t code = fp8_detail::fp8_round_magnitude<2, 15>(a);
    code = fp8_detail::blend(a > 0x47600000u, 0x7Bu, code);  // above 57344 (Inf too): saturate
    code = fp8_detail::blend(a > 0x7F800000u, 0x7Eu, code);  // NaN
    return static_cast<uint8_t>(sign | code);
}

inline float hifloat8_to_f32(uint8_t code) { return bits_f32(fp8_detail::kHiFloat8Bits[code]); }

inline uint8_t f32_to_hifloat8(float value) {
    const uint32_t u = f32_bits(value);
    const uint32_t a = u & 0x7FFFFFFFu;
    // [2^−23, 2^−22) rounds (ties away) to 2^−22; map it there so the rounding sees a member.
    const uint32_t sign = (u >> 24) & 0x80u;
    using fp8_detail::blend;
    const uint32_t clamped = blend(a >= 0x34000000u && a < 0x34800000u, 0x34800000u, a);
    uint32_t code = sign | fp8_detail::hifloat8_round_magnitude(clamped);
    code = blend(a < 0x34000000u, 0x00u, code);          // below 2^−23 (±0 too): zero, unsigned
    code = blend(a >= 0x47000000u, sign | 0x6Eu, code);  // >= 32768 (Inf too): saturate
    code = blend(a > 0x7F800000u, 0x80u, code);          // NaN
    return static_cast<uint8_t>(code);
}

inline constexpr uint8_t kE8M0NaN = 0xFF;

// The E8M0 byte of a biased exponent, clamped to the finite range [0, 254] (docs/contract.md §5's
// b = clamp(e − emax_elem + 127, 0, 254)); 0xFF (NaN) is never produced, write kE8M0NaN for it.
inline uint8_t e8m0_from_exponent(int biased) {
    return static_cast<uint8_t>(biased < 0 ? 0 : (biased > 254 ? 254 : biased));
}

// 2^(b − 127): b = 0 is the binary32 subnormal 2^−127; 0xFF is the quiet NaN 0x7FC00000.
inline float e8m0_to_f32(uint8_t b) {
    const uint32_t bits =
        b == 0xFF ? 0x7FC00000u : (b == 0 ? 0x00400000u : static_cast<uint32_t>(b) << 23);
    return bits_f32(bits);
}

// Rows: dst[i] = convert(src[i]) for i < n, equal to the scalar functions above. With AVX-512
// VBMI (not in sanitized builds) they run the vector codecs of fused_rows.hpp, else the portable
// loops below.
void f32_row_to_fp8_e4m3(const float* src, uint8_t* dst, int64_t n);
void f32_row_to_fp8_e5m2(const float* src, uint8_t* dst, int64_t n);
void f32_row_to_hifloat8(const float* src, uint8_t* dst, int64_t n);
void fp8_e4m3_row_to_f32(const uint8_t* src, float* dst, int64_t n);
void fp8_e5m2_row_to_f32(const uint8_t* src, float* dst, int64_t n);
void hifloat8_row_to_f32(const uint8_t* src, float* dst, int64_t n);

// The portable row loops (the fallback of the rows above; tests call both paths).
namespace fp8_detail {
void f32_row_to_fp8_e4m3_portable(const float* src, uint8_t* dst, int64_t n);
void f32_row_to_fp8_e5m2_portable(const float* src, uint8_t* dst, int64_t n);
void f32_row_to_hifloat8_portable(const float* src, uint8_t* dst, int64_t n);
void fp8_e4m3_row_to_f32_portable(const uint8_t* src, float* dst, int64_t n);
void fp8_e5m2_row_to_f32_portable(const uint8_t* src, float* dst, int64_t n);
void hifloat8_row_to_f32_portable(const uint8_t* src, float* dst, int64_t n);
}  // namespace fp8_detail

}  // namespace moedist::quant
