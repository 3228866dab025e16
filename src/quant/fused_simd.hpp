// AVX-512 pieces the fused quantizers (fused_rows.cpp) and the vector codec rows
// (vector_codecs.cpp) share: lane masks, the one-add fp8 encoder, packing and storing codes.
// Internal: included only where MOEDIST_FUSED is defined (x86-64, not sanitized).
#pragma once

#include <immintrin.h>

#include <cstdint>

#include "quant/float_bits.hpp"

namespace moedist::quant::simd {

#define MOEDIST_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

// GCC 12 warns on the _mm512_undefined_* inside its own intrinsic headers.
#pragma GCC diagnostic push
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#pragma GCC diagnostic ignored "-Wuninitialized"

MOEDIST_AVX512 inline __mmask16 lanes(int64_t left) {
    return left >= 16 ? static_cast<__mmask16>(0xFFFF)
                      : static_cast<__mmask16>((1u << static_cast<unsigned>(left)) - 1u);
}

// fp8 codes of binary32 values, one per lane (0..255): RNE, saturating at maxV, subnormals
// gradual, −0 kept; NaN gives maxV's code unless `nan` (then the canonical NaN code with the
// sign). One float addition does the rounding: with E the biased exponent of |v| clamped to at
// least the min normal's, m = 2^(E − 127 + 23 − mant) has, in the binade of m, exactly the fp8
// spacing of |v|'s binade (or of the subnormal grid), so fl32(|v| + m) = m + k·spacing with
// k = rne(|v| / spacing) (the embedded rounding ignores MXCSR; no subnormal is produced, and a
// binary32 subnormal |v| rounds to k = 0 even where DAZ reads it as 0). The code is
// (E − Emin)·2^mant + k; adding the even j ≡ that offset (mod 256) to m's low bits leaves the
// rounding (and its tie parity) alone and leaves the code in the low 7 bits of the sum's bits.
// `clamp` false is for callers whose |v| never reaches the would-be next value above maxV
// (e4m3 464, e5m2 59392): those round to maxV's code by themselves.
template <bool e4m3, bool nan = false, bool clamp = true>
MOEDIST_AVX512 inline __m512i encode_fp8_bits(__m512i u) {
    constexpr int kMantShift = e4m3 ? 20 : 21;                       // 23 − mantissa bits
    constexpr uint32_t kMaxBits = e4m3 ? 0x43E00000u : 0x47600000u;  // 448, 57344
    constexpr uint32_t kMinNormal = e4m3 ? 121u << 23 : 113u << 23;  // 2^−6, 2^−14
    // j = (E << mant) + (256·c − Emin·2^mant): 8E + 56 (e4m3), 4E + 60 (e5m2).
    constexpr uint32_t kOffset = (static_cast<uint32_t>(kMantShift) << 23) + (e4m3 ? 56u : 60u);
    const __m512i a = _mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF));
    __m512i ac = a;
    if constexpr (clamp) ac = _mm512_min_epu32(a, _mm512_set1_epi32(static_cast<int>(kMaxBits)));
    const __m512i eb = _mm512_max_epu32(_mm512_and_si512(ac, _mm512_set1_epi32(0x7F800000)),
                                        _mm512_set1_epi32(static_cast<int>(kMinNormal)));
    const __m512i m = _mm512_add_epi32(_mm512_add_epi32(eb, _mm512_srli_epi32(eb, kMantShift)),
                                       _mm512_set1_epi32(static_cast<int>(kOffset)));
    __m512i sum =
        _mm512_castps_si512(_mm512_add_round_ps(_mm512_castsi512_ps(ac),
                                                _mm512_castsi512_ps(m),
                                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    if constexpr (nan) {
        const __mmask16 is_nan = _mm512_cmpgt_epu32_mask(a, _mm512_set1_epi32(0x7F800000));
        sum = _mm512_mask_mov_epi32(sum, is_nan, _mm512_set1_epi32(e4m3 ? 0x7F : 0x7E));
    }
    // (sum & 0x7F) | ((u >> 24) & ~0x7F): the magnitude code and the sign bit.
    return _mm512_ternarylogic_epi32(sum, _mm512_srli_epi32(u, 24), _mm512_set1_epi32(0x7F), 0xE4);
}

// 32 bf16 at src as two binary32 vectors in "unpacked" order: lo holds elements 8L..8L+3 of
// each 128-bit lane L, hi elements 8L+4..8L+7 (one op each; pack_codes<true> restores the order).

// The 64 codes (0..255) of c0..c3 as bytes, in element order: c0..c3 hold elements 0..63 in
// order (unpacked false), or are lo, hi of elements 0..31 and lo, hi of 32..63 from
// load_bf16_unpacked (unpacked true).
template <bool unpacked = false>
MOEDIST_AVX512 inline __m512i pack_codes(__m512i c0, __m512i c1, __m512i c2, __m512i c3) {
    // Per 128-bit lane L the packs give c0[4L..4L+3] c1[4L..] c2[4L..] c3[4L..]: dword 4L + j
    // holds four codes of cj. The permute puts the dword of elements 4p..4p+3 at position p.
    const __m512i bytes =
        _mm512_packus_epi16(_mm512_packus_epi32(c0, c1), _mm512_packus_epi32(c2, c3));
    const __m512i order =
        unpacked ? _mm512_setr_epi32(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15)
                 : _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_permutexvar_epi32(order, bytes);
}

MOEDIST_AVX512 inline void store64(uint8_t* dst, __m512i bytes, bool streaming) {
    if (streaming && (reinterpret_cast<std::uintptr_t>(dst) & 63u) == 0) {
        _mm512_stream_si512(reinterpret_cast<__m512i*>(dst), bytes);
    } else {
        _mm512_storeu_si512(dst, bytes);
    }
}

// Stores the low bytes of 16 lanes at dst (the first `left` of them when left < 16).
MOEDIST_AVX512 inline void store_codes(uint8_t* dst, __m512i code, int64_t left) {
    if (left >= 16) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm512_cvtepi32_epi8(code));
    } else {
        _mm512_mask_cvtepi32_storeu_epi8(dst, lanes(left), code);
    }
}

#pragma GCC diagnostic pop

}  // namespace moedist::quant::simd
