#include "quant/row_kernels.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "quant/float_bits.hpp"

#include "util/cpu.hpp"

namespace moedist::quant {
namespace {

MOEDIST_MULTIVERSION
void load_bf16(const uint16_t* src, int64_t stride, float* dst, int64_t n) {
    if (stride == 1) {
        for (int64_t i = 0; i < n; ++i) dst[i] = bits_f32(static_cast<uint32_t>(src[i]) << 16);
    } else {
        for (int64_t i = 0; i < n; ++i)
            dst[i] = bits_f32(static_cast<uint32_t>(src[i * stride]) << 16);
    }
}

MOEDIST_MULTIVERSION
void store_bf16(const float* src, uint16_t* dst, int64_t stride, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const uint32_t u = f32_bits(src[i]);
        const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
        const uint32_t quiet = ((u >> 16) & 0x8000u) | 0x7FC0u;
        dst[i * stride] = static_cast<uint16_t>((u & 0x7FFFFFFFu) > 0x7F800000u ? quiet : rounded);
    }
}

#if defined(__x86_64__)
// F16C converts exactly (subnormals kept: MXCSR's FTZ/DAZ are off); only NaN needs the contract's
// canonical 0x7E00 | sign, fixed up per 8 lanes when a NaN is present.
bool has_f16c() { return util::cpu_f16c(); }

__attribute__((target("avx2,f16c"))) void load_f16_f16c(const uint16_t* src,
                                                        float* dst,
                                                        int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

__attribute__((target("avx2,f16c"))) void store_f16_f16c(const float* src,
                                                         uint16_t* dst,
                                                         int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(src + i);
        if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)) != 0) {
            for (int64_t j = i; j < i + 8; ++j) dst[j] = f32_to_f16(src[j]);
            continue;
        }
        const __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
    }
    for (; i < n; ++i) dst[i] = f32_to_f16(src[i]);
}

__attribute__((target("avx2,f16c"))) void accumulate_f16_f16c(const uint16_t* src,
                                                              float weight,
                                                              float* acc,
                                                              int64_t n) {
    const __m256 w = _mm256_set1_ps(weight);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v =
            _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
        const __m256 product = _mm256_mul_ps(v, w);
        _mm256_storeu_ps(acc + i, _mm256_add_ps(_mm256_loadu_ps(acc + i), product));
    }
    for (; i < n; ++i) {
        const float product = f16_to_f32(src[i]) * weight;
        acc[i] = acc[i] + product;
    }
}
#else
bool has_f16c() { return false; }
void load_f16_f16c(const uint16_t*, float*, int64_t) {}
void store_f16_f16c(const float*, uint16_t*, int64_t) {}
void accumulate_f16_f16c(const uint16_t*, float, float*, int64_t) {}
#endif

void load_f16(const uint16_t* src, int64_t stride, float* dst, int64_t n) {
    if (stride == 1 && has_f16c()) return load_f16_f16c(src, dst, n);
    for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(src[i * stride]);
}

void store_f16(const float* src, uint16_t* dst, int64_t stride, int64_t n) {
    if (stride == 1 && has_f16c()) return store_f16_f16c(src, dst, n);
    for (int64_t i = 0; i < n; ++i) dst[i * stride] = f32_to_f16(src[i]);
}

MOEDIST_MULTIVERSION
void accumulate_bf16(const uint16_t* src, float weight, float* acc, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const float product = bits_f32(static_cast<uint32_t>(src[i]) << 16) * weight;
        acc[i] = acc[i] + product;
    }
}

// Integer max of |v| bit patterns: for non-negative floats the bit order is the value order, and
// NaN (> 0x7F800000) and Inf (0x7F800000) sort above every finite value.
MOEDIST_MULTIVERSION
uint32_t abs_max_bits(const float* row, int64_t n) {
    uint32_t m = 0;
    for (int64_t i = 0; i < n; ++i) {
        const uint32_t a = f32_bits(row[i]) & 0x7FFFFFFFu;
        m = a > m ? a : m;
    }
    return m;
}

MOEDIST_MULTIVERSION
void multiply_rows(float* row, const float* smooth, int64_t n) {
    for (int64_t i = 0; i < n; ++i) row[i] = row[i] * smooth[i];
}

// q = clamp(rne(fl32(y * ds)), -128, 127) for finite y and ds (no NaN can arise).
MOEDIST_MULTIVERSION
void scale_round_int8(const float* row, float ds, int8_t* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const float scaled = row[i] * ds;
        float r = __builtin_nearbyintf(scaled);
        r = r < -128.0f ? -128.0f : r;
        r = r > 127.0f ? 127.0f : r;
        dst[i] = static_cast<int8_t>(static_cast<int32_t>(r));
    }
}

inline float round_to(DType dtype, float value) {
    return dtype == DType::kBFloat16 ? bf16_to_f32(f32_to_bf16(value))
                                     : f16_to_f32(f32_to_f16(value));
}

// rne to an integer under the default rounding mode, NaN -> 0, clamped to [lo, hi].
inline float rne_clamp(float value, float lo, float hi) {
    if (std::isnan(value)) return 0.0f;
    const float r = std::nearbyint(value);
    return r < lo ? lo : (r > hi ? hi : r);
}

}  // namespace

void load_row_f32(DType dtype, const void* src, int64_t stride, float* dst, int64_t n) {
    const auto* bits = static_cast<const uint16_t*>(src);
    if (dtype == DType::kBFloat16) {
        load_bf16(bits, stride, dst, n);
    } else {
        load_f16(bits, stride, dst, n);
    }
}

void store_row_f32(DType dtype, const float* src, void* dst, int64_t stride, int64_t n) {
    auto* bits = static_cast<uint16_t*>(dst);
    if (dtype == DType::kBFloat16) {
        store_bf16(src, bits, stride, n);
    } else {
        store_f16(src, bits, stride, n);
    }
}

void add_round_row(DType dtype, float* row, const float* other, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const float sum = row[i] + other[i];
        row[i] = round_to(dtype, sum);
    }
}

void comm_quant_round_trip(DType dtype, float* row, int64_t n) {
    constexpr int64_t kBlock = 8;
    const float inv127 = 1.0f / 127.0f;
    for (int64_t begin = 0; begin < n; begin += kBlock) {
        const int64_t end = begin + kBlock < n ? begin + kBlock : n;
        float m = 0.0f;
        for (int64_t i = begin; i < end; ++i) {
            const float a = std::fabs(row[i]);
            m = (a > m || std::isnan(a)) ? a : m;
        }
        if (m == 0.0f) {
            for (int64_t i = begin; i < end; ++i) row[i] = 0.0f;
            continue;
        }
        const float s32 = m * inv127;
        const float scale = round_to(dtype, s32);
        for (int64_t i = begin; i < end; ++i) {
            // Rounded twice, as the device's cast chain does: to fp16, then to an integer
            // (101.49 -> 101.5 -> 102). |quotient| <= ~127, far inside fp16's range.
            const float quotient = row[i] / s32;
            const float q = rne_clamp(f16_to_f32(f32_to_f16(quotient)), -127.0f, 127.0f);
            const float product = q * scale;
            row[i] = round_to(dtype, product);
        }
    }
}

MOEDIST_MULTIVERSION
void accumulate_weighted(float* acc, const float* row, float weight, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const float product = row[i] * weight;
        acc[i] = acc[i] + product;
    }
}

MOEDIST_MULTIVERSION
void accumulate(float* acc, const float* row, int64_t n) {
    for (int64_t i = 0; i < n; ++i) acc[i] = acc[i] + row[i];
}

float quantize_row_int8(float* row,
                        const float* smooth,
                        int64_t smooth_stride,
                        int8_t* dst,
                        int64_t dst_stride,
                        int64_t n) {
    if (smooth != nullptr) {
        if (smooth_stride == 1) {
            multiply_rows(row, smooth, n);
        } else {
            for (int64_t i = 0; i < n; ++i) row[i] = row[i] * smooth[i * smooth_stride];
        }
    }
    const uint32_t m_bits = abs_max_bits(row, n);
    const bool not_finite = m_bits >= 0x7F800000u;
    if (m_bits == 0) {
        for (int64_t i = 0; i < n; ++i) dst[i * dst_stride] = 0;
        return 0.0f;
    }
    const float ds = not_finite ? 0.0f : 127.0f / bits_f32(m_bits);
    if (not_finite || std::isinf(ds)) {
        for (int64_t i = 0; i < n; ++i) dst[i * dst_stride] = 0;
        return bits_f32(0x7FC00000u);
    }
    if (dst_stride == 1) {
        scale_round_int8(row, ds, dst, n);
    } else {
        for (int64_t i = 0; i < n; ++i) {
            const float scaled = row[i] * ds;
            dst[i * dst_stride] = static_cast<int8_t>(rne_clamp(scaled, -128.0f, 127.0f));
        }
    }
    return 1.0f / ds;
}

#if defined(MOEDIST_VECTOR_X86)
bool has_avx512() { return util::cpu_avx512(); }

// GCC 12 warns on the _mm512_undefined_* inside its own intrinsic headers.
#pragma GCC diagnostic push
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#pragma GCC diagnostic ignored "-Wuninitialized"
// y = f32(src[i]) (· smooth[i]) for 16 lanes under mask k. Deterministic: both passes below
// compute the same y bit for bit.
__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) inline __m512 load_y(
    bool bf16, const uint16_t* src, const float* smooth, int64_t i, __mmask16 k) {
    const __m256i h = _mm256_maskz_loadu_epi16(k, src + i);
    __m512 v = bf16 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
                    : _mm512_cvtph_ps(h);
    if (smooth != nullptr) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, smooth + i));
    return v;
}

inline __mmask16 lanes(int64_t left) {
    return left >= 16 ? static_cast<__mmask16>(0xFFFF)
                      : static_cast<__mmask16>((1u << static_cast<unsigned>(left)) - 1u);
}

// The largest |y| bit pattern of a row (see abs_max_bits); y is not stored.
__attribute__((target("avx512f,avx512bw,avx512vl"))) uint32_t absmax_y_avx512(bool bf16,
                                                                              const uint16_t* src,
                                                                              const float* smooth,
                                                                              int64_t n) {
    const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF);
    __m512i m = _mm512_setzero_si512();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = lanes(n - i);
        const __m512 v = load_y(bf16, src, smooth, i, k);
        m = _mm512_mask_max_epu32(m, k, m, _mm512_and_si512(_mm512_castps_si512(v), abs_mask));
    }
    return _mm512_reduce_max_epu32(m);
}

// dst[i] = clamp(rne(fl32(y[i] * ds)), -128, 127) for a finite row (a saturating conversion),
// recomputing y from the source; streaming stores when asked and `dst` is 16-byte aligned.
__attribute__((target("avx512f,avx512bw,avx512vl"))) void quantize_y_avx512(bool bf16,
                                                                            const uint16_t* src,
                                                                            const float* smooth,
                                                                            float ds,
                                                                            int8_t* dst,
                                                                            int64_t n,
                                                                            bool streaming) {
    const __m512 scale = _mm512_set1_ps(ds);
    const bool stream = streaming && (reinterpret_cast<std::uintptr_t>(dst) & 15u) == 0;
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = lanes(n - i);
        const __m512 v = _mm512_mul_ps(load_y(bf16, src, smooth, i, k), scale);
        const __m512i q =
            _mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        if (stream && k == 0xFFFF) {
            _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), _mm512_cvtsepi32_epi8(q));
        } else {
            _mm512_mask_cvtsepi32_storeu_epi8(dst + i, k, q);
        }
    }
}
#pragma GCC diagnostic pop
#else
bool has_avx512() { return false; }
uint32_t absmax_y_avx512(bool, const uint16_t*, const float*, int64_t) { return 0; }
void quantize_y_avx512(bool, const uint16_t*, const float*, float, int8_t*, int64_t, bool) {}
#endif

float quantize_row_int8_from(DType dtype,
                             const void* src,
                             int64_t src_stride,
                             const float* smooth,
                             int64_t smooth_stride,
                             float* scratch,
                             int8_t* dst,
                             int64_t dst_stride,
                             int64_t n,
                             bool streaming) {
    const bool contiguous =
        src_stride == 1 && dst_stride == 1 && (smooth == nullptr || smooth_stride == 1);
    if (!contiguous || !has_avx512()) {
        load_row_f32(dtype, src, src_stride, scratch, n);
        return quantize_row_int8(scratch, smooth, smooth_stride, dst, dst_stride, n);
    }
    // Same steps as quantize_row_int8, fused: the max of y, then y again scaled and rounded (two
    // reads of the source row, which stays in L1/L2, and no binary32 row in memory).
    const bool bf16 = dtype == DType::kBFloat16;
    const auto* bits = static_cast<const uint16_t*>(src);
    const uint32_t m_bits = absmax_y_avx512(bf16, bits, smooth, n);
    if (m_bits == 0) {
        std::memset(dst, 0, static_cast<std::size_t>(n));
        return 0.0f;
    }
    const float ds = m_bits >= 0x7F800000u ? 0.0f : 127.0f / bits_f32(m_bits);
    if (m_bits >= 0x7F800000u || std::isinf(ds)) {
        std::memset(dst, 0, static_cast<std::size_t>(n));
        return bits_f32(0x7FC00000u);
    }
    quantize_y_avx512(bf16, bits, smooth, ds, dst, n, streaming);
    return 1.0f / ds;
}

void accumulate_weighted_from(
    DType dtype, const void* src, int64_t stride, float weight, float* acc, int64_t n) {
    const auto* bits = static_cast<const uint16_t*>(src);
    if (stride == 1 && dtype == DType::kBFloat16) return accumulate_bf16(bits, weight, acc, n);
    if (stride == 1 && has_f16c()) return accumulate_f16_f16c(bits, weight, acc, n);
    for (int64_t i = 0; i < n; ++i) {
        const float v = dtype == DType::kBFloat16 ? bf16_to_f32(bits[i * stride])
                                                  : f16_to_f32(bits[i * stride]);
        const float product = v * weight;
        acc[i] = acc[i] + product;
    }
}

}  // namespace moedist::quant
