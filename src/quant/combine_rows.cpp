#include "quant/combine_rows.hpp"

#include "util/cpu.hpp"

#if defined(MOEDIST_VECTOR_X86)
#define MOEDIST_COMBINE_AVX512 1
#include <immintrin.h>
#endif

namespace moedist::quant {

#if defined(MOEDIST_COMBINE_AVX512)
namespace {

#define MOEDIST_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

#pragma GCC diagnostic push
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#pragma GCC diagnostic ignored "-Wuninitialized"

// 16 values of a 16-bit row as binary32 (exact), lanes past k zero.
template <bool bf16>
MOEDIST_AVX512 inline __m512 widen(const uint16_t* p, __mmask16 k) {
    const __m256i h = _mm256_maskz_loadu_epi16(k, p);
    return bf16 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
                : _mm512_cvtph_ps(h);
}

// rne to the 16-bit format; NaN → the canonical quiet NaN with its sign (docs/contract.md §5). bf16 by
// integer rounding (vcvtneps2bf16 would flush subnormals); fp16 by vcvtps2ph (exact under the
// call's MXCSR: RNE, no FTZ).
template <bool bf16>
MOEDIST_AVX512 inline __m256i narrow(__m512 v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i magnitude = _mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF));
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(magnitude, _mm512_set1_epi32(0x7F800000));
    const __m512i sign16 = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x8000));
    __m512i bits;
    if constexpr (bf16) {
        const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
        bits = _mm512_srli_epi32(
            _mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), odd), 16);
        bits = _mm512_mask_or_epi32(bits, nan, sign16, _mm512_set1_epi32(0x7FC0));
    } else {
        bits = _mm512_cvtepu16_epi32(
            _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        bits = _mm512_mask_or_epi32(bits, nan, sign16, _mm512_set1_epi32(0x7E00));
    }
    return _mm512_cvtepi32_epi16(bits);
}

constexpr int64_t kPrefetchBytes = 1024;

// 64 elements per pass (4 accumulators), the last pass masked; rows are read once each.
template <bool bf16>
MOEDIST_AVX512 void combine(const uint16_t* const* rows,
                            const float* weights,
                            int64_t count,
                            const uint16_t* const* unweighted,
                            int64_t unweighted_count,
                            uint16_t* out,
                            int64_t n) {
    for (int64_t h = 0; h < n; h += 64) {
        __mmask16 k[4];
        for (int j = 0; j < 4; ++j) {
            const int64_t left = n - h - 16 * j;
            k[j] = left >= 16 ? static_cast<__mmask16>(0xFFFF)
                              : (left <= 0 ? static_cast<__mmask16>(0)
                                           : static_cast<__mmask16>((1u << left) - 1u));
        }
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t r = 0; r < count; ++r) {
            const uint16_t* p = rows[r] + h;
            // Rows are short (H·2 bytes) and scattered: the hardware prefetcher restarts at
            // every page, so ask for each row's lines a few passes ahead.
            _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetchBytes, _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetchBytes + 64, _MM_HINT_T0);
            const __m512 w = _mm512_set1_ps(weights[r]);
            a0 = _mm512_add_ps(a0, _mm512_mul_ps(widen<bf16>(p, k[0]), w));
            a1 = _mm512_add_ps(a1, _mm512_mul_ps(widen<bf16>(p + 16, k[1]), w));
            a2 = _mm512_add_ps(a2, _mm512_mul_ps(widen<bf16>(p + 32, k[2]), w));
            a3 = _mm512_add_ps(a3, _mm512_mul_ps(widen<bf16>(p + 48, k[3]), w));
        }
        for (int64_t r = 0; r < unweighted_count; ++r) {  // fl32(v · 1) = v: added as it is
            const uint16_t* p = unweighted[r] + h;
            a0 = _mm512_add_ps(a0, widen<bf16>(p, k[0]));
            a1 = _mm512_add_ps(a1, widen<bf16>(p + 16, k[1]));
            a2 = _mm512_add_ps(a2, widen<bf16>(p + 32, k[2]));
            a3 = _mm512_add_ps(a3, widen<bf16>(p + 48, k[3]));
        }
        _mm256_mask_storeu_epi16(out + h, k[0], narrow<bf16>(a0));
        _mm256_mask_storeu_epi16(out + h + 16, k[1], narrow<bf16>(a1));
        _mm256_mask_storeu_epi16(out + h + 32, k[2], narrow<bf16>(a2));
        _mm256_mask_storeu_epi16(out + h + 48, k[3], narrow<bf16>(a3));
    }
}

#pragma GCC diagnostic pop

}  // namespace

bool combine_rows_available() { return util::cpu_avx512(); }

void combine_rows(DType dtype,
                  const uint16_t* const* rows,
                  const float* weights,
                  int64_t count,
                  const uint16_t* const* unweighted,
                  int64_t unweighted_count,
                  uint16_t* out,
                  int64_t n) {
    if (dtype == DType::kBFloat16) {
        combine<true>(rows, weights, count, unweighted, unweighted_count, out, n);
    } else {
        combine<false>(rows, weights, count, unweighted, unweighted_count, out, n);
    }
}

#else

bool combine_rows_available() { return false; }
void combine_rows(DType,
                  const uint16_t* const*,
                  const float*,
                  int64_t,
                  const uint16_t* const*,
                  int64_t,
                  uint16_t*,
                  int64_t) {}

#endif

}  // namespace moedist::quant
