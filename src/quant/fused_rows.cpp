#include "quant/fused_rows.hpp"

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "quant/dispatch_quant.hpp"
#include "quant/float_bits.hpp"
#include "quant/fp8.hpp"

#include "util/cpu.hpp"

#if defined(MOEDIST_VECTOR_X86)
#define MOEDIST_FUSED 1
#include <immintrin.h>

#include "quant/fused_simd.hpp"
#endif

namespace moedist::quant {

#if defined(MOEDIST_FUSED)
namespace {

using namespace simd;

// GCC 12 warns on the _mm512_undefined_* inside its own intrinsic headers.
#pragma GCC diagnostic push
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#pragma GCC diagnostic ignored "-Wuninitialized"

// 16 source values as binary32 (exact), under mask k.
template <bool bf16>
MOEDIST_AVX512 inline __m512 load_x(const uint16_t* src, __mmask16 k) {
    const __m256i h = _mm256_maskz_loadu_epi16(k, src);
    return bf16 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
                : _mm512_cvtph_ps(h);
}

// y = x (· smooth) for 16 lanes under mask k; the same bits on every call.
template <bool bf16, bool smoothed>
MOEDIST_AVX512 inline __m512 load_y(const uint16_t* src,
                                    const float* smooth,
                                    int64_t i,
                                    __mmask16 k) {
    __m512 v = load_x<bf16>(src + i, k);
    if constexpr (smoothed) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, smooth + i));
    return v;
}

// The largest |y| bit pattern over [begin, end) (NaN and Inf sort above every finite value).
// Without smooth scales, on the 16-bit patterns: |x| patterns of fp16 and bf16 sort as their
// (exactly widened) binary32 values do.
template <bool bf16, bool smoothed>
MOEDIST_AVX512 uint32_t
absmax_bits(const uint16_t* src, const float* smooth, int64_t begin, int64_t end) {
    if constexpr (!smoothed) {
        const __m512i abs16 = _mm512_set1_epi16(0x7FFF);
        __m512i m0 = _mm512_setzero_si512(), m1 = _mm512_setzero_si512();
        int64_t i = begin;
        for (; i + 64 <= end; i += 64) {
            m0 = _mm512_max_epu16(m0, _mm512_and_si512(_mm512_loadu_si512(src + i), abs16));
            m1 = _mm512_max_epu16(m1, _mm512_and_si512(_mm512_loadu_si512(src + i + 32), abs16));
        }
        for (; i < end; i += 32) {
            const int64_t left = end - i;
            const __mmask32 k = left >= 32 ? ~__mmask32{0} : (__mmask32{1} << left) - 1;
            m0 =
                _mm512_max_epu16(m0, _mm512_and_si512(_mm512_maskz_loadu_epi16(k, src + i), abs16));
        }
        m0 = _mm512_max_epu16(m0, m1);
        const __m512i m32 = _mm512_max_epu32(_mm512_and_si512(m0, _mm512_set1_epi32(0xFFFF)),
                                             _mm512_srli_epi32(m0, 16));
        const auto h = static_cast<uint16_t>(_mm512_reduce_max_epu32(m32));
        return bf16 ? static_cast<uint32_t>(h) << 16 : f32_bits(f16_to_f32(h));
    } else {
        const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF);
        __m512i m = _mm512_setzero_si512();
        for (int64_t i = begin; i < end; i += 16) {
            const __mmask16 k = lanes(end - i);
            const __m512 v = load_y<bf16, true>(src, smooth, i, k);
            m = _mm512_max_epu32(m, _mm512_and_si512(_mm512_castps_si512(v), abs_mask));
        }
        return _mm512_reduce_max_epu32(m);
    }
}
MOEDIST_AVX512 inline void load_bf16_unpacked(const uint16_t* src, __m512& lo, __m512& hi) {
    const __m512i x = _mm512_loadu_si512(src);
    lo = _mm512_castsi512_ps(_mm512_unpacklo_epi16(_mm512_setzero_si512(), x));
    hi = _mm512_castsi512_ps(_mm512_unpackhi_epi16(_mm512_setzero_si512(), x));
}

template <bool bf16, bool e4m3, bool smoothed, bool clamp>
MOEDIST_AVX512 inline __m512i scaled_code(
    const uint16_t* src, const float* smooth, __m512 scale, int64_t i, __mmask16 k) {
    const __m512 v = _mm512_mul_ps(load_y<bf16, smoothed>(src, smooth, i, k), scale);
    return encode_fp8_bits<e4m3, false, clamp>(_mm512_castps_si512(v));
}

// dst[i] = encode(y[i] * scale) over [begin, end); 64-byte pieces stream when `streaming` and
// dst is 64-byte aligned there.
template <bool bf16, bool e4m3, bool smoothed, bool clamp>
MOEDIST_AVX512 void scale_encode(const uint16_t* src,
                                 const float* smooth,
                                 float scale,
                                 int64_t begin,
                                 int64_t end,
                                 uint8_t* dst,
                                 bool streaming) {
    const __m512 s = _mm512_set1_ps(scale);
    int64_t i = begin;
    if constexpr (bf16 && !smoothed) {
        for (; i + 64 <= end; i += 64) {
            __m512 x[4];
            load_bf16_unpacked(src + i, x[0], x[1]);
            load_bf16_unpacked(src + i + 32, x[2], x[3]);
            __m512i c[4];
            for (int j = 0; j < 4; ++j) {
                c[j] = encode_fp8_bits<e4m3, false, clamp>(
                    _mm512_castps_si512(_mm512_mul_ps(x[j], s)));
            }
            store64(dst + i, pack_codes<true>(c[0], c[1], c[2], c[3]), streaming);
        }
    }
    for (; i + 64 <= end; i += 64) {
        const __m512i c0 = scaled_code<bf16, e4m3, smoothed, clamp>(src, smooth, s, i, 0xFFFF);
        const __m512i c1 = scaled_code<bf16, e4m3, smoothed, clamp>(src, smooth, s, i + 16, 0xFFFF);
        const __m512i c2 = scaled_code<bf16, e4m3, smoothed, clamp>(src, smooth, s, i + 32, 0xFFFF);
        const __m512i c3 = scaled_code<bf16, e4m3, smoothed, clamp>(src, smooth, s, i + 48, 0xFFFF);
        store64(dst + i, pack_codes(c0, c1, c2, c3), streaming);
    }
    for (; i < end; i += 16) {
        store_codes(dst + i,
                    scaled_code<bf16, e4m3, smoothed, clamp>(src, smooth, s, i, lanes(end - i)),
                    end - i);
    }
}

MOEDIST_AVX512 inline void fill(uint8_t* dst, int64_t n, uint8_t value) {
    const __m512i v = _mm512_set1_epi8(static_cast<char>(value));
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) _mm512_storeu_si512(dst + i, v);
    if (i < n) _mm512_mask_storeu_epi8(dst + i, (__mmask64{1} << (n - i)) - 1, v);
}

// docs/contract.md §5's scale of a dynamic block from its max |y| bits: true with ds, or false with every q
// of the block (fill) and its scale already decided (m = 0, non-finite m, or ds = +Inf).
inline bool dynamic_scale(
    uint32_t m_bits, float max_v, uint8_t nan_code, float& ds, float& scale, uint8_t& fill_byte) {
    if (m_bits == 0) {
        fill_byte = 0;
        scale = 0.0f;
        return false;
    }
    ds = m_bits >= 0x7F800000u ? INFINITY : max_v / bits_f32(m_bits);
    if (std::isinf(ds)) {
        fill_byte = nan_code;
        scale = bits_f32(0x7FC00000u);
        return false;
    }
    scale = 1.0f / ds;
    return true;
}

// Per-token (block >= n, or any block other than 128) dynamic quantization.
template <bool bf16, bool e4m3, bool smoothed>
MOEDIST_AVX512 void dynamic_blocks(const uint16_t* src,
                                   const float* smooth,
                                   int64_t n,
                                   int64_t block,
                                   uint8_t* dst,
                                   float* scales_out,
                                   bool streaming) {
    const float max_v = e4m3 ? 448.0f : 57344.0f;
    const uint8_t nan_code = e4m3 ? 0x7F : 0x7E;
    for (int64_t begin = 0, b = 0; begin < n; begin += block, ++b) {
        const int64_t end = begin + block < n ? begin + block : n;
        float ds = 0;
        uint8_t fill_byte = 0;
        if (!dynamic_scale(absmax_bits<bf16, smoothed>(src, smooth, begin, end),
                           max_v,
                           nan_code,
                           ds,
                           scales_out[b],
                           fill_byte)) {
            fill(dst + begin, end - begin, fill_byte);
            continue;
        }
        // |y·ds| <= maxV·(1 + 2^−23)^2: below the next value above maxV, so no clamp.
        scale_encode<bf16, e4m3, smoothed, false>(src, smooth, ds, begin, end, dst, streaming);
    }
}

// Per-group dynamic quantization (groups of 128): each group's y stays in 8 registers between
// its maximum and its encoding. The tail group (n mod 128) takes dynamic_blocks.
template <bool bf16, bool e4m3, bool smoothed>
MOEDIST_AVX512 void dynamic_groups(const uint16_t* src,
                                   const float* smooth,
                                   int64_t n,
                                   uint8_t* dst,
                                   float* scales_out,
                                   bool streaming) {
    const float max_v = e4m3 ? 448.0f : 57344.0f;
    const uint8_t nan_code = e4m3 ? 0x7F : 0x7E;
    const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF);
    int64_t g = 0, b = 0;
    for (; g + 128 <= n; g += 128, ++b) {
        __m512 y[8];
        __m512i m = _mm512_setzero_si512();
        constexpr bool kUnpacked = bf16 && !smoothed;
        for (int j = 0; j < 8; ++j) {
            if constexpr (kUnpacked) {
                if (j % 2 == 0) load_bf16_unpacked(src + g + 16 * j, y[j], y[j + 1]);
            } else {
                y[j] = load_y<bf16, smoothed>(src, smooth, g + 16 * j, 0xFFFF);
            }
        }
        for (int j = 0; j < 8; ++j)
            m = _mm512_max_epu32(m, _mm512_and_si512(_mm512_castps_si512(y[j]), abs_mask));
        float ds = 0;
        uint8_t fill_byte = 0;
        if (!dynamic_scale(
                _mm512_reduce_max_epu32(m), max_v, nan_code, ds, scales_out[b], fill_byte)) {
            fill(dst + g, 128, fill_byte);
            continue;
        }
        const __m512 s = _mm512_set1_ps(ds);
        __m512i c[8];
        for (int j = 0; j < 8; ++j) {
            c[j] = encode_fp8_bits<e4m3, false, false>(_mm512_castps_si512(_mm512_mul_ps(y[j], s)));
        }
        store64(dst + g, pack_codes<kUnpacked>(c[0], c[1], c[2], c[3]), streaming);
        store64(dst + g + 64, pack_codes<kUnpacked>(c[4], c[5], c[6], c[7]), streaming);
    }
    if (g < n) {
        dynamic_blocks<bf16, e4m3, smoothed>(src + g,
                                             smoothed ? smooth + g : nullptr,
                                             n - g,
                                             n - g,
                                             dst + g,
                                             scales_out + b,
                                             streaming);
    }
}

// Dword b of the result: the largest 16-bit lane of v[b], b < 16 (a transposing max tree:
// 15 pairs of shuffles instead of 16 horizontal reductions).
MOEDIST_AVX512 inline __m512i hmax_u16x16(const __m512i* v) {
    __m512i x[8], y[4], z[2];
    for (int i = 0; i < 8; ++i) {  // lanes 0-1: v[2i], lanes 2-3: v[2i+1]
        x[i] = _mm512_max_epu16(_mm512_shuffle_i32x4(v[2 * i], v[2 * i + 1], 0x44),
                                _mm512_shuffle_i32x4(v[2 * i], v[2 * i + 1], 0xEE));
    }
    for (int i = 0; i < 4; ++i) {  // lane L: v[4i + L]
        y[i] = _mm512_max_epu16(_mm512_shuffle_i32x4(x[2 * i], x[2 * i + 1], 0x88),
                                _mm512_shuffle_i32x4(x[2 * i], x[2 * i + 1], 0xDD));
    }
    for (int i = 0; i < 2; ++i) {  // lane L, qword q: v[4(2i + q) + L]
        z[i] = _mm512_max_epu16(_mm512_unpacklo_epi64(y[2 * i], y[2 * i + 1]),
                                _mm512_unpackhi_epi64(y[2 * i], y[2 * i + 1]));
    }
    // Lane L, dword j: v[4j + L] (two 16-bit partials).
    const __m512i a = _mm512_castps_si512(_mm512_shuffle_ps(
        _mm512_castsi512_ps(z[0]), _mm512_castsi512_ps(z[1]), _MM_SHUFFLE(2, 0, 2, 0)));
    const __m512i b = _mm512_castps_si512(_mm512_shuffle_ps(
        _mm512_castsi512_ps(z[0]), _mm512_castsi512_ps(z[1]), _MM_SHUFFLE(3, 1, 3, 1)));
    const __m512i m = _mm512_max_epu16(a, b);
    const __m512i m32 = _mm512_max_epu16(m, _mm512_srli_epi32(m, 16));
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm512_and_si512(_mm512_permutexvar_epi32(order, m32), _mm512_set1_epi32(0xFFFF));
}

// binary32 bits of 16 |x| patterns (one per dword) of the source format.
template <bool bf16>
MOEDIST_AVX512 inline __m512i widen_abs(__m512i h) {
    if constexpr (bf16) {
        return _mm512_slli_epi32(h, 16);
    } else {
        return _mm512_castps_si512(_mm512_cvtph_ps(_mm512_cvtepi32_epi16(h)));
    }
}

// 16 bf16/fp16 values at src as binary32 (bf16: the unpacked order, pairs with pack_codes<true>).
template <bool bf16>
MOEDIST_AVX512 inline void load32(const uint16_t* src, __m512& x0, __m512& x1) {
    if constexpr (bf16) {
        load_bf16_unpacked(src, x0, x1);
    } else {
        x0 = load_x<false>(src, 0xFFFF);
        x1 = load_x<false>(src + 16, 0xFFFF);
    }
}

// Per-group dynamic quantization without smooth scales, 16 groups of 128 at a time: the groups'
// maxima on 16-bit patterns and one max tree, the scales of all 16 as vector divisions (the
// bits of the scalar divisions), then each group encoded with its broadcast ds.
template <bool bf16, bool e4m3>
MOEDIST_AVX512 void dynamic_groups_plain(
    const uint16_t* src, int64_t n, uint8_t* dst, float* scales_out, bool streaming) {
    const float max_v = e4m3 ? 448.0f : 57344.0f;
    const uint8_t nan_code = e4m3 ? 0x7F : 0x7E;
    const __m512i abs16 = _mm512_set1_epi16(0x7FFF);
    const int64_t groups = n / 128;
    for (int64_t g0 = 0; g0 < groups; g0 += 16) {
        const int count = static_cast<int>(groups - g0 < 16 ? groups - g0 : 16);
        __m512i v[16];
        for (int j = 0; j < 16; ++j) {
            v[j] = _mm512_setzero_si512();
            if (j >= count) continue;
            const uint16_t* p = src + (g0 + j) * 128;
            v[j] = _mm512_max_epu16(
                _mm512_max_epu16(_mm512_and_si512(_mm512_loadu_si512(p), abs16),
                                 _mm512_and_si512(_mm512_loadu_si512(p + 32), abs16)),
                _mm512_max_epu16(_mm512_and_si512(_mm512_loadu_si512(p + 64), abs16),
                                 _mm512_and_si512(_mm512_loadu_si512(p + 96), abs16)));
        }
        const __m512i m = widen_abs<bf16>(hmax_u16x16(v));
        const __mmask16 valid = lanes(count);
        const __mmask16 zero = _mm512_mask_cmpeq_epi32_mask(valid, m, _mm512_setzero_si512());
        const __m512 ds = _mm512_div_ps(_mm512_set1_ps(max_v), _mm512_castsi512_ps(m));
        // m NaN/Inf, or ds = +Inf (m = 0 aside): the NaN group.
        const __mmask16 nan = static_cast<__mmask16>(
            (_mm512_cmpge_epu32_mask(m, _mm512_set1_epi32(0x7F800000)) |
             _mm512_cmpeq_epi32_mask(_mm512_castps_si512(ds), _mm512_set1_epi32(0x7F800000))) &
            valid & ~zero);
        __m512 scale = _mm512_div_ps(_mm512_set1_ps(1.0f), ds);
        scale = _mm512_mask_mov_ps(scale, zero, _mm512_setzero_ps());
        scale = _mm512_mask_mov_ps(scale, nan, _mm512_castsi512_ps(_mm512_set1_epi32(0x7FC00000)));
        _mm512_mask_storeu_ps(scales_out + g0, valid, scale);
        alignas(64) float ds_of[16];
        _mm512_store_ps(ds_of, ds);
        for (int j = 0; j < count; ++j) {
            uint8_t* q = dst + (g0 + j) * 128;
            if (((zero | nan) >> j) & 1) {
                fill(q, 128, (zero >> j) & 1 ? uint8_t{0} : nan_code);
                continue;
            }
            const __m512 s = _mm512_set1_ps(ds_of[j]);
            const uint16_t* p = src + (g0 + j) * 128;
            __m512 x[8];
            for (int k = 0; k < 4; ++k) load32<bf16>(p + 32 * k, x[2 * k], x[2 * k + 1]);
            __m512i c[8];
            for (int k = 0; k < 8; ++k) {
                c[k] = encode_fp8_bits<e4m3, false, false>(
                    _mm512_castps_si512(_mm512_mul_ps(x[k], s)));
            }
            store64(q, pack_codes<bf16>(c[0], c[1], c[2], c[3]), streaming);
            store64(q + 64, pack_codes<bf16>(c[4], c[5], c[6], c[7]), streaming);
        }
    }
    const int64_t g = groups * 128;
    if (g < n) {
        dynamic_blocks<bf16, e4m3, false>(
            src + g, nullptr, n - g, n - g, dst + g, scales_out + groups, streaming);
    }
}

// The E8M0 byte and the multiplier 2^(127 − b) of an MX block from its finite, nonzero max |x|
// bits (docs/contract.md §5: e = floor(log2(amax)) exactly, subnormal amax included).
inline uint8_t mx_scale(uint32_t a_bits, bool e4m3, float& multiplier) {
    const int biased = static_cast<int>(a_bits >> 23);
    const int e = biased > 0 ? biased - 127 : -149 + (31 - __builtin_clz(a_bits & 0x7FFFFFu));
    int scale_byte = e - (e4m3 ? 8 : 15) + 127;
    scale_byte = scale_byte < 0 ? 0 : (scale_byte > 254 ? 254 : scale_byte);
    const int k = 127 - scale_byte;  // 2^k, k in [-127, 127]
    multiplier = k >= -126 ? bits_f32(static_cast<uint32_t>(k + 127) << 23) : bits_f32(0x00400000u);
    return static_cast<uint8_t>(scale_byte);
}

// One full MX block of 32 at src: its E8M0 byte, its codes in c[0..1] (bf16: in the order of
// load_bf16_unpacked; the fill byte's in every lane for a zero or non-finite block). x stays in 2
// registers between its maximum and its encoding.
template <bool bf16, bool e4m3>
MOEDIST_AVX512 inline uint8_t mx_block(const uint16_t* src, __m512i* c) {
    const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF);
    __m512 x0, x1;
    if constexpr (bf16) {
        load_bf16_unpacked(src, x0, x1);
    } else {
        x0 = load_x<false>(src, 0xFFFF);
        x1 = load_x<false>(src + 16, 0xFFFF);
    }
    const uint32_t a_bits = _mm512_reduce_max_epu32(
        _mm512_max_epu32(_mm512_and_si512(_mm512_castps_si512(x0), abs_mask),
                         _mm512_and_si512(_mm512_castps_si512(x1), abs_mask)));
    if (a_bits >= 0x7F800000u || a_bits == 0) {
        c[0] = c[1] = _mm512_set1_epi32(a_bits == 0 ? 0 : (e4m3 ? 0x7F : 0x7E));
        return a_bits == 0 ? uint8_t{0} : kE8M0NaN;
    }
    float multiplier = 0;
    const uint8_t byte = mx_scale(a_bits, e4m3, multiplier);
    const __m512 s = _mm512_set1_ps(multiplier);
    c[0] = encode_fp8_bits<e4m3>(_mm512_castps_si512(_mm512_mul_ps(x0, s)));
    c[1] = encode_fp8_bits<e4m3>(_mm512_castps_si512(_mm512_mul_ps(x1, s)));
    return byte;
}

// MX blocks of 32, 16 at a time: the blocks' maxima on 16-bit patterns and one max tree, all 16
// E8M0 bytes and multipliers in vector integer arithmetic (floor(log2) of a subnormal amax from
// its exactly converted integer significand), then each block encoded with its broadcast
// multiplier; zero and non-finite blocks are filled afterwards. The rest (fewer than 16 blocks)
// takes mx_blocks.
template <bool bf16, bool e4m3>
MOEDIST_AVX512 int64_t
mx_blocks16(const uint16_t* src, int64_t n, uint8_t* dst, uint8_t* scale_bytes, bool streaming) {
    const uint8_t nan_code = e4m3 ? 0x7F : 0x7E;
    const __m512i abs16 = _mm512_set1_epi16(0x7FFF);
    int64_t begin = 0;
    for (; begin + 512 <= n; begin += 512) {
        const uint16_t* x = src + begin;
        __m512i v[16];
        for (int j = 0; j < 16; ++j) v[j] = _mm512_and_si512(_mm512_loadu_si512(x + 32 * j), abs16);
        const __m512i a = widen_abs<bf16>(hmax_u16x16(v));
        const __mmask16 zero = _mm512_cmpeq_epi32_mask(a, _mm512_setzero_si512());
        const __mmask16 nan = _mm512_cmpge_epu32_mask(a, _mm512_set1_epi32(0x7F800000));
        // floor(log2(amax)) + 127: the biased exponent, or for a subnormal amax m·2^−149 the
        // biased exponent of (float)m (exact, m < 2^23) − 149.
        const __mmask16 subnormal = _mm512_cmplt_epu32_mask(a, _mm512_set1_epi32(0x00800000));
        __m512i e = _mm512_srli_epi32(a, 23);
        e = _mm512_mask_sub_epi32(e,
                                  subnormal,
                                  _mm512_srli_epi32(_mm512_castps_si512(_mm512_cvtepi32_ps(a)), 23),
                                  _mm512_set1_epi32(149));
        // b = clamp(e − emax_elem + 127, 0, 254); multiplier 2^(127 − b): bits (254 − b) << 23,
        // or the subnormal 2^−127 for b = 254.
        __m512i b = _mm512_sub_epi32(e, _mm512_set1_epi32(e4m3 ? 8 : 15));
        b = _mm512_min_epi32(_mm512_max_epi32(b, _mm512_setzero_si512()), _mm512_set1_epi32(254));
        __m512i mult = _mm512_slli_epi32(_mm512_sub_epi32(_mm512_set1_epi32(254), b), 23);
        mult = _mm512_mask_mov_epi32(mult,
                                     _mm512_cmpeq_epi32_mask(b, _mm512_set1_epi32(254)),
                                     _mm512_set1_epi32(0x00400000));
        b = _mm512_mask_mov_epi32(b, zero, _mm512_setzero_si512());
        b = _mm512_mask_mov_epi32(b, nan, _mm512_set1_epi32(kE8M0NaN));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(scale_bytes + begin / 32),
                         _mm512_cvtepi32_epi8(b));
        alignas(64) float mult_of[16];
        _mm512_store_si512(mult_of, mult);
        for (int j = 0; j < 16; j += 2) {
            __m512i c[4];
            for (int h = 0; h < 2; ++h) {
                __m512 x0, x1;
                load32<bf16>(x + 32 * (j + h), x0, x1);
                const __m512 s = _mm512_set1_ps(mult_of[j + h]);
                c[2 * h] = encode_fp8_bits<e4m3>(_mm512_castps_si512(_mm512_mul_ps(x0, s)));
                c[2 * h + 1] = encode_fp8_bits<e4m3>(_mm512_castps_si512(_mm512_mul_ps(x1, s)));
            }
            store64(dst + begin + 32 * j, pack_codes<bf16>(c[0], c[1], c[2], c[3]), streaming);
        }
        for (unsigned special = zero | nan; special != 0; special &= special - 1) {
            const int j = __builtin_ctz(special);
            fill(dst + begin + 32 * j, 32, (zero >> j) & 1 ? uint8_t{0} : nan_code);
        }
    }
    return begin;
}

// MX blocks of 32: each block's x stays in 2 registers between its maximum and its encoding;
// 64 codes (two blocks) per store. A partial last block takes the masked path.
template <bool bf16, bool e4m3>
MOEDIST_AVX512 void mx_blocks(
    const uint16_t* src, int64_t n, uint8_t* dst, uint8_t* scale_bytes, bool streaming) {
    const uint8_t nan_code = e4m3 ? 0x7F : 0x7E;
    int64_t begin = mx_blocks16<bf16, e4m3>(src, n, dst, scale_bytes, streaming);
    int64_t b = begin / 32;
    for (; begin + 64 <= n; begin += 64, b += 2) {
        __m512i c[4];
        scale_bytes[b] = mx_block<bf16, e4m3>(src + begin, c);
        scale_bytes[b + 1] = mx_block<bf16, e4m3>(src + begin + 32, c + 2);
        store64(dst + begin, pack_codes<bf16>(c[0], c[1], c[2], c[3]), streaming);
    }
    for (; begin < n; begin += 32, ++b) {
        const int64_t end = begin + 32 < n ? begin + 32 : n;
        const uint32_t a_bits = absmax_bits<bf16, false>(src, nullptr, begin, end);
        if (a_bits >= 0x7F800000u || a_bits == 0) {
            fill(dst + begin, end - begin, a_bits == 0 ? 0 : nan_code);
            scale_bytes[b] = a_bits == 0 ? 0 : kE8M0NaN;
            continue;
        }
        float multiplier = 0;
        scale_bytes[b] = mx_scale(a_bits, e4m3, multiplier);
        scale_encode<bf16, e4m3, false, true>(src, nullptr, multiplier, begin, end, dst, streaming);
    }
}

MOEDIST_AVX512 void static_int8(
    bool bf16, const uint16_t* src, const float* s, int64_t s_stride, int64_t n, int8_t* dst) {
    const __m512 lo = _mm512_set1_ps(-128.0f), hi = _mm512_set1_ps(127.0f);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = lanes(n - i);
        const __m512 scale = s_stride == 0 ? _mm512_set1_ps(s[0]) : _mm512_maskz_loadu_ps(k, s + i);
        const __m512 v =
            _mm512_mul_ps(bf16 ? load_x<true>(src + i, k) : load_x<false>(src + i, k), scale);
        const __mmask16 is_nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        const __m512 clamped =
            _mm512_min_ps(_mm512_max_ps(v, lo), hi);  // integers: clamp then round
        __m512i q =
            _mm512_cvt_roundps_epi32(clamped, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        q = _mm512_maskz_mov_epi32(static_cast<__mmask16>(~is_nan), q);  // NaN -> 0
        if (k == 0xFFFF) {
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm512_cvtsepi32_epi8(q));
        } else {
            _mm512_mask_cvtsepi32_storeu_epi8(dst + i, k, q);
        }
    }
}

#pragma GCC diagnostic pop

}  // namespace

bool fused_available() { return util::cpu_avx512(); }

void fused_fp8_dynamic(DType source,
                       const uint16_t* src,
                       const float* smooth,
                       DType target,
                       int64_t n,
                       int64_t block,
                       uint8_t* dst,
                       float* scales_out,
                       bool streaming) {
    const bool bf16 = source == DType::kBFloat16;
    const bool e4m3 = target == DType::kFp8E4M3;
    const bool smoothed = smooth != nullptr;
    // One instantiation per (source, target, smooth, groups of 128 or not).
    using Fn = void (*)(const uint16_t*, const float*, int64_t, int64_t, uint8_t*, float*, bool);
    constexpr Fn kBlocks[2][2][2] = {
        {{dynamic_blocks<false, false, false>, dynamic_blocks<false, false, true>},
         {dynamic_blocks<false, true, false>, dynamic_blocks<false, true, true>}},
        {{dynamic_blocks<true, false, false>, dynamic_blocks<true, false, true>},
         {dynamic_blocks<true, true, false>, dynamic_blocks<true, true, true>}}};
    using GroupFn = void (*)(const uint16_t*, const float*, int64_t, uint8_t*, float*, bool);
    constexpr GroupFn kGroups[2][2][2] = {
        {{dynamic_groups<false, false, false>, dynamic_groups<false, false, true>},
         {dynamic_groups<false, true, false>, dynamic_groups<false, true, true>}},
        {{dynamic_groups<true, false, false>, dynamic_groups<true, false, true>},
         {dynamic_groups<true, true, false>, dynamic_groups<true, true, true>}}};
    if (block == 128 && !smoothed) {
        if (bf16) {
            e4m3 ? dynamic_groups_plain<true, true>(src, n, dst, scales_out, streaming)
                 : dynamic_groups_plain<true, false>(src, n, dst, scales_out, streaming);
        } else {
            e4m3 ? dynamic_groups_plain<false, true>(src, n, dst, scales_out, streaming)
                 : dynamic_groups_plain<false, false>(src, n, dst, scales_out, streaming);
        }
    } else if (block == 128) {
        kGroups[bf16][e4m3][smoothed](src, smooth, n, dst, scales_out, streaming);
    } else {
        kBlocks[bf16][e4m3][smoothed](src, smooth, n, block, dst, scales_out, streaming);
    }
}

void fused_fp8_mx(DType source,
                  const uint16_t* src,
                  DType target,
                  int64_t n,
                  uint8_t* dst,
                  uint8_t* scale_bytes,
                  bool streaming) {
    const bool bf16 = source == DType::kBFloat16;
    const bool e4m3 = target == DType::kFp8E4M3;
    if (bf16) {
        e4m3 ? mx_blocks<true, true>(src, n, dst, scale_bytes, streaming)
             : mx_blocks<true, false>(src, n, dst, scale_bytes, streaming);
    } else {
        e4m3 ? mx_blocks<false, true>(src, n, dst, scale_bytes, streaming)
             : mx_blocks<false, false>(src, n, dst, scale_bytes, streaming);
    }
}

void fused_static_int8(
    DType source, const uint16_t* src, const float* s, int64_t s_stride, int64_t n, int8_t* dst) {
    static_int8(source == DType::kBFloat16, src, s, s_stride, n, dst);
}

#else

bool fused_available() { return false; }
void fused_fp8_dynamic(
    DType, const uint16_t*, const float*, DType, int64_t, int64_t, uint8_t*, float*, bool) {}
void fused_fp8_mx(DType, const uint16_t*, DType, int64_t, uint8_t*, uint8_t*, bool) {}
void fused_static_int8(DType, const uint16_t*, const float*, int64_t, int64_t, int8_t*) {}

#endif

}  // namespace moedist::quant
