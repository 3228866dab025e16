#include "quant/fused_rows.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "quant/dispatch_quant.hpp"
#include "quant/float_bits.hpp"
#include "quant/fp8.hpp"

#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
#define MOEDIST_FUSED 1
#include <immintrin.h>
#endif

namespace moedist::quant {

#if defined(MOEDIST_FUSED)
namespace {

#define MOEDIST_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

// GCC 12 warns on the _mm512_undefined_* inside its own intrinsic headers.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

MOEDIST_AVX512 inline __mmask16 lanes(int64_t left) {
    return left >= 16 ? static_cast<__mmask16>(0xFFFF)
                      : static_cast<__mmask16>((1u << static_cast<unsigned>(left)) - 1u);
}

// x (· smooth) for 16 lanes under mask k; the same bits on every call.
MOEDIST_AVX512 inline __m512 load_y(
    bool bf16, const uint16_t* src, const float* smooth, int64_t i, __mmask16 k) {
    const __m256i h = _mm256_maskz_loadu_epi16(k, src + i);
    __m512 v = bf16 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
                    : _mm512_cvtph_ps(h);
    if (smooth != nullptr) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, smooth + i));
    return v;
}

// The largest |y| bit pattern over [begin, end) (NaN and Inf sort above every finite value).
MOEDIST_AVX512 uint32_t
absmax_bits(bool bf16, const uint16_t* src, const float* smooth, int64_t begin, int64_t end) {
    const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF);
    __m512i m = _mm512_setzero_si512();
    for (int64_t i = begin; i < end; i += 16) {
        const __mmask16 k = lanes(end - i);
        const __m512 v = load_y(bf16, src, smooth, i, k);
        m = _mm512_mask_max_epu32(m, k, m, _mm512_and_si512(_mm512_castps_si512(v), abs_mask));
    }
    return _mm512_reduce_max_epu32(m);
}

// fp8 codes of finite binary32 values, RNE, saturating at maxV, subnormals gradual, −0 kept.
// Normal range: round the mantissa to 3 (e4m3) or 2 (e5m2) bits in the integer domain; below the
// smallest normal, adding 2^(spacing exponent + 23) rounds to the subnormal grid in hardware.
template <bool e4m3>
MOEDIST_AVX512 inline __m512i encode_fp8(__m512 v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i sign = _mm512_srli_epi32(
        _mm512_and_si512(u, _mm512_set1_epi32(static_cast<int>(0x80000000u))), 24);
    __m512 a = _mm512_castsi512_ps(_mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF)));
    a = _mm512_min_ps(a, _mm512_set1_ps(e4m3 ? 448.0f : 57344.0f));
    const __m512i ua = _mm512_castps_si512(a);
    const int shift = e4m3 ? 20 : 21;
    const __m512i half = _mm512_set1_epi32(e4m3 ? 0x7FFFF : 0xFFFFF);
    const __m512i odd =
        _mm512_and_si512(_mm512_srli_epi32(ua, static_cast<unsigned>(shift)), _mm512_set1_epi32(1));
    const __m512i rounded = _mm512_add_epi32(ua, _mm512_add_epi32(half, odd));
    const __m512i normal =
        _mm512_sub_epi32(_mm512_srli_epi32(rounded, static_cast<unsigned>(shift)),
                         _mm512_set1_epi32(e4m3 ? 960 : 448));
    const float magic = e4m3 ? 16384.0f : 128.0f;  // 2^14 = 2^(-9 + 23), 2^7 = 2^(-16 + 23)
    const __m512 grid = _mm512_add_ps(a, _mm512_set1_ps(magic));
    const __m512i subnormal = _mm512_sub_epi32(
        _mm512_castps_si512(grid), _mm512_set1_epi32(static_cast<int>(f32_bits(magic))));
    const __mmask16 is_normal =
        _mm512_cmp_ps_mask(a, _mm512_set1_ps(e4m3 ? 0x1p-6f : 0x1p-14f), _CMP_GE_OQ);
    return _mm512_or_si512(_mm512_mask_blend_epi32(is_normal, subnormal, normal), sign);
}

// dst[i] = encode(y[i] * scale) over [begin, end); full vectors stream when `streaming` and dst
// is 16-byte aligned there.
template <bool e4m3>
MOEDIST_AVX512 void scale_encode_as(bool bf16,
                                    const uint16_t* src,
                                    const float* smooth,
                                    float scale,
                                    int64_t begin,
                                    int64_t end,
                                    uint8_t* dst,
                                    bool streaming) {
    const __m512 s = _mm512_set1_ps(scale);
    for (int64_t i = begin; i < end; i += 16) {
        const __mmask16 k = lanes(end - i);
        const __m512 v = _mm512_mul_ps(load_y(bf16, src, smooth, i, k), s);
        const __m512i code = encode_fp8<e4m3>(v);
        if (k == 0xFFFF) {  // the memory form of vpmovdb is slow on some cores: narrow in registers
            auto* out = reinterpret_cast<__m128i*>(dst + i);
            if (streaming && (reinterpret_cast<std::uintptr_t>(out) & 15u) == 0) {
                _mm_stream_si128(out, _mm512_cvtepi32_epi8(code));
            } else {
                _mm_storeu_si128(out, _mm512_cvtepi32_epi8(code));
            }
        } else {
            _mm512_mask_cvtepi32_storeu_epi8(dst + i, k, code);
        }
    }
}

void scale_encode(bool bf16,
                  const uint16_t* src,
                  const float* smooth,
                  float scale,
                  bool e4m3,
                  int64_t begin,
                  int64_t end,
                  uint8_t* dst,
                  bool streaming) {
    if (e4m3) {
        scale_encode_as<true>(bf16, src, smooth, scale, begin, end, dst, streaming);
    } else {
        scale_encode_as<false>(bf16, src, smooth, scale, begin, end, dst, streaming);
    }
}

MOEDIST_AVX512 void static_int8(
    bool bf16, const uint16_t* src, const float* s, int64_t s_stride, int64_t n, int8_t* dst) {
    const __m512 lo = _mm512_set1_ps(-128.0f), hi = _mm512_set1_ps(127.0f);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = lanes(n - i);
        const __m512 scale = s_stride == 0 ? _mm512_set1_ps(s[0]) : _mm512_maskz_loadu_ps(k, s + i);
        const __m512 v = _mm512_mul_ps(load_y(bf16, src, nullptr, i, k), scale);
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

uint8_t positive_nan(DType target) {
    return target == DType::kFp8E4M3 ? uint8_t{0x7F} : uint8_t{0x7E};
}

}  // namespace

bool fused_available() {
    static const bool value = __builtin_cpu_supports("avx512f") &&
                              __builtin_cpu_supports("avx512bw") &&
                              __builtin_cpu_supports("avx512vl");
    return value;
}

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
    for (int64_t begin = 0, b = 0; begin < n; begin += block, ++b) {
        const int64_t end = begin + block < n ? begin + block : n;
        const uint32_t m_bits = absmax_bits(bf16, src, smooth, begin, end);
        if (m_bits == 0) {
            std::memset(dst + begin, 0, static_cast<std::size_t>(end - begin));
            scales_out[b] = 0.0f;
            continue;
        }
        const bool not_finite = m_bits >= 0x7F800000u;
        const float ds = not_finite ? 0.0f : max_value(target) / bits_f32(m_bits);
        if (not_finite || std::isinf(ds)) {
            std::memset(dst + begin, positive_nan(target), static_cast<std::size_t>(end - begin));
            scales_out[b] = bits_f32(0x7FC00000u);
            continue;
        }
        scale_encode(bf16, src, smooth, ds, e4m3, begin, end, dst, streaming);
        scales_out[b] = 1.0f / ds;
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
    for (int64_t begin = 0, b = 0; begin < n; begin += 32, ++b) {
        const int64_t end = begin + 32 < n ? begin + 32 : n;
        const uint32_t a_bits = absmax_bits(bf16, src, nullptr, begin, end);
        if (a_bits >= 0x7F800000u) {
            std::memset(dst + begin, positive_nan(target), static_cast<std::size_t>(end - begin));
            scale_bytes[b] = kE8M0NaN;
            continue;
        }
        if (a_bits == 0) {
            std::memset(dst + begin, 0, static_cast<std::size_t>(end - begin));
            scale_bytes[b] = 0;
            continue;
        }
        const int biased = static_cast<int>(a_bits >> 23);
        const int e = biased > 0 ? biased - 127 : -149 + (31 - __builtin_clz(a_bits & 0x7FFFFFu));
        int scale_byte = e - (e4m3 ? 8 : 15) + 127;
        scale_byte = scale_byte < 0 ? 0 : (scale_byte > 254 ? 254 : scale_byte);
        const int k = 127 - scale_byte;  // 2^k, k in [-127, 127]
        const float multiplier =
            k >= -126 ? bits_f32(static_cast<uint32_t>(k + 127) << 23) : bits_f32(0x00400000u);
        scale_encode(bf16, src, nullptr, multiplier, e4m3, begin, end, dst, streaming);
        scale_bytes[b] = static_cast<uint8_t>(scale_byte);
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
