// Vector rows of the 8-bit codecs (AVX-512 VBMI for the byte permutes): the bits of the scalar
// conversions of fp8.hpp on every input (tests/unit/format_codec_test.cpp).
#include <array>
#include <cstdint>
#include <cstring>

#include "quant/fp8.hpp"
#include "quant/fused_rows.hpp"

#include "util/cpu.hpp"

#if defined(MOEDIST_VECTOR_X86)
#define MOEDIST_FUSED 1
#include "quant/fused_simd.hpp"
#endif

namespace moedist::quant {

#if defined(MOEDIST_FUSED)
namespace {

using namespace simd;

#pragma GCC diagnostic push
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#pragma GCC diagnostic ignored "-Wuninitialized"

// ---- Vector rows of the 8-bit codecs (AVX-512 VBMI for the byte permutes) ----

#define MOEDIST_AVX512_VBMI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi")))

// HiFloat8 tables indexed by a biased binary32 exponent E mod 64 (E = 103..142 are distinct mod
// 64), derived from the layout of fp8.hpp: keep(E) mantissa bits (2^keep codes share 2^(E−127)'s
// exponent) and base(E), the code of 2^(E − 127).
struct HiFloat8Tables {
    alignas(64) uint8_t half_shift[64];  // h = 1 << half_shift: half the spacing of E's class
    alignas(64) uint8_t shift[64];       // q = rounded >> shift = (E << keep) | mantissa
    alignas(64) uint8_t offset[64];      // code = q + offset (mod 256)
};

constexpr HiFloat8Tables make_hifloat8_tables() {
    HiFloat8Tables t{};
    for (uint32_t e = 105; e <= 142; ++e) {
        uint32_t codes = 0, base = 0;
        for (uint32_t c = 0; c < 128; ++c) {
            const uint32_t bits = fp8_detail::hifloat8_bits(c);
            if ((bits >> 23) == e && c != 0x6F) {  // 0x6F is Inf
                ++codes;
                if ((bits & 0x7FFFFFu) == 0) base = c;
            }
        }
        const uint32_t keep = codes == 8 ? 3 : (codes == 4 ? 2 : (codes == 2 ? 1 : 0));
        t.half_shift[e & 63] = static_cast<uint8_t>(22 - keep);
        t.shift[e & 63] = static_cast<uint8_t>(23 - keep);
        t.offset[e & 63] = static_cast<uint8_t>((base - (e << keep)) & 0xFFu);
    }
    // [2^−23, 2^−22) rounds up to 2^−22: adding 2^23 always carries into E = 105, whose shift
    // (23) drops the mantissa.
    t.half_shift[104 & 63] = 23;
    // Below 2^−23 (clamped up to 2^−24, E = 103): no rounding (1 << 32 is 0), q = 0, code 0.
    t.half_shift[103 & 63] = 32;
    t.shift[103 & 63] = 32;
    t.offset[103 & 63] = 0;
    return t;
}

inline constexpr HiFloat8Tables kHiFloat8Tables = make_hifloat8_tables();

// HiFloat8 codes of binary32 values (low byte of each lane), the bits of f32_to_hifloat8: round
// the magnitude at half the spacing of its class with an integer add (ties away), then the code
// of the rounded value from its exponent E2 (the carry into the next binade leaves the top
// keep(E2) mantissa bits zero, so the class of E2 reads the right mantissa).
MOEDIST_AVX512_VBMI inline __m512i encode_hifloat8_bits(__m512i u,
                                                        __m512i half_shift,
                                                        __m512i shift,
                                                        __m512i offset) {
    constexpr __mmask64 kByte0 = 0x1111111111111111ull;  // byte 0 of each lane
    const __m512i a = _mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF));
    // [2^−24, 2^15]: tiny values give 0 (E = 103), >= 32768 and Inf saturate; NaN fixed below.
    const __m512i ac = _mm512_min_epu32(_mm512_max_epu32(a, _mm512_set1_epi32(0x33800000)),
                                        _mm512_set1_epi32(0x47000000));
    const __m512i e = _mm512_srli_epi32(ac, 23);
    const __m512i h = _mm512_sllv_epi32(_mm512_set1_epi32(1),
                                        _mm512_maskz_permutexvar_epi8(kByte0, e, half_shift));
    const __m512i y = _mm512_add_epi32(ac, h);
    const __m512i e2 = _mm512_srli_epi32(y, 23);
    const __m512i q = _mm512_srlv_epi32(y, _mm512_maskz_permutexvar_epi8(kByte0, e2, shift));
    __m512i code = _mm512_add_epi32(q, _mm512_permutexvar_epi8(e2, offset));
    // The sign for negative values of magnitude >= 2^−23 (NaN included, replaced next).
    const __mmask16 negative =
        _mm512_cmpge_epu32_mask(u, _mm512_set1_epi32(static_cast<int>(0xB4000000u)));
    code = _mm512_mask_or_epi32(code, negative, code, _mm512_set1_epi32(0x80));
    const __mmask16 is_nan = _mm512_cmpgt_epu32_mask(a, _mm512_set1_epi32(0x7F800000));
    return _mm512_mask_mov_epi32(code, is_nan, _mm512_set1_epi32(0x80));
}

template <bool e4m3>
MOEDIST_AVX512 void encode_fp8_row(const float* src, uint8_t* dst, int64_t n) {
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        const __m512i c0 = encode_fp8_bits<e4m3, true>(_mm512_loadu_si512(src + i));
        const __m512i c1 = encode_fp8_bits<e4m3, true>(_mm512_loadu_si512(src + i + 16));
        const __m512i c2 = encode_fp8_bits<e4m3, true>(_mm512_loadu_si512(src + i + 32));
        const __m512i c3 = encode_fp8_bits<e4m3, true>(_mm512_loadu_si512(src + i + 48));
        _mm512_storeu_si512(dst + i, pack_codes(c0, c1, c2, c3));
    }
    for (; i < n; i += 16) {
        const __mmask16 k = lanes(n - i);
        store_codes(
            dst + i, encode_fp8_bits<e4m3, true>(_mm512_maskz_loadu_epi32(k, src + i)), n - i);
    }
}

MOEDIST_AVX512_VBMI void encode_hifloat8_row(const float* src, uint8_t* dst, int64_t n) {
    const __m512i half_shift = _mm512_load_si512(kHiFloat8Tables.half_shift);
    const __m512i shift = _mm512_load_si512(kHiFloat8Tables.shift);
    const __m512i offset = _mm512_load_si512(kHiFloat8Tables.offset);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 k = lanes(n - i);
        const __m512i u = _mm512_maskz_loadu_epi32(k, src + i);
        store_codes(dst + i, encode_hifloat8_bits(u, half_shift, shift, offset), n - i);
    }
}

// Decoding: every code of the three formats decodes to a binary32 whose low 16 bits are zero (a
// bfloat16), and (but for HiFloat8's 0x80, NaN) code | 0x80 is the negation of code. Two
// 128-entry byte tables (bits 16..23 and 24..31 of the value of code & 0x7F) are looked up in
// registers, 64 codes at a time.
struct DecodeTables {
    alignas(64) uint8_t lo[128];
    alignas(64) uint8_t hi[128];
};

template <float (*Decode)(uint8_t)>
const DecodeTables& decode_tables() {
    static const DecodeTables tables = [] {
        DecodeTables t{};
        for (unsigned c = 0; c < 128; ++c) {
            const uint32_t bits = f32_bits(Decode(static_cast<uint8_t>(c)));
            t.lo[c] = static_cast<uint8_t>(bits >> 16);
            t.hi[c] = static_cast<uint8_t>(bits >> 24);
        }
        return t;
    }();
    return tables;
}

// Byte order that makes the unpacks below produce lanes in order: byte 16L + 4j + b of the
// permuted codes is code 16j + 4L + b.
constexpr std::array<uint8_t, 64> make_decode_order() {
    std::array<uint8_t, 64> order{};
    for (std::size_t l = 0; l < 4; ++l)
        for (std::size_t j = 0; j < 4; ++j)
            for (std::size_t b = 0; b < 4; ++b)
                order[16 * l + 4 * j + b] = static_cast<uint8_t>(16 * j + 4 * l + b);
    return order;
}

alignas(64) inline constexpr std::array<uint8_t, 64> kDecodeOrder = make_decode_order();

template <bool hifloat8>
MOEDIST_AVX512_VBMI void decode_row(const DecodeTables& t,
                                    const uint8_t* src,
                                    float* dst,
                                    int64_t n) {
    const __m512i lo0 = _mm512_load_si512(t.lo), lo1 = _mm512_load_si512(t.lo + 64);
    const __m512i hi0 = _mm512_load_si512(t.hi), hi1 = _mm512_load_si512(t.hi + 64);
    const __m512i order = _mm512_load_si512(kDecodeOrder.data());
    const __m512i sign = _mm512_set1_epi8(static_cast<char>(0x80));
    const __m512i zero = _mm512_setzero_si512();
    for (int64_t i = 0; i < n; i += 64) {
        const int64_t left = n - i;
        const __mmask64 k = left >= 64 ? ~__mmask64{0} : (__mmask64{1} << left) - 1;
        const __m512i c = _mm512_permutexvar_epi8(order, _mm512_maskz_loadu_epi8(k, src + i));
        __m512i lo = _mm512_permutex2var_epi8(lo0, c, lo1);
        __m512i hi = _mm512_permutex2var_epi8(hi0, c, hi1);
        hi = _mm512_ternarylogic_epi32(hi, c, sign, 0xF8);  // hi | (c & 0x80)
        if constexpr (hifloat8) {                           // 0x80 is NaN 0x7FC00000, not −0
            const __mmask64 is_nan = _mm512_cmpeq_epi8_mask(c, sign);
            lo = _mm512_mask_blend_epi8(is_nan, lo, _mm512_set1_epi8(static_cast<char>(0xC0)));
            hi = _mm512_mask_blend_epi8(is_nan, hi, _mm512_set1_epi8(0x7F));
        }
        const __m512i w0 = _mm512_unpacklo_epi8(lo, hi), w1 = _mm512_unpackhi_epi8(lo, hi);
        const __m512i d[4] = {_mm512_unpacklo_epi16(zero, w0),
                              _mm512_unpackhi_epi16(zero, w0),
                              _mm512_unpacklo_epi16(zero, w1),
                              _mm512_unpackhi_epi16(zero, w1)};
        if (left >= 64) {
            for (int j = 0; j < 4; ++j) _mm512_storeu_si512(dst + i + 16 * j, d[j]);
        } else {
            for (int j = 0; j < 4 && 16 * j < left; ++j)
                _mm512_mask_storeu_epi32(dst + i + 16 * j, lanes(left - 16 * j), d[j]);
        }
    }
}

#pragma GCC diagnostic pop

}  // namespace

bool vector_codecs_available() {
    return util::cpu_avx512_vbmi();
}

void vector_encode_row(DType format, const float* src, uint8_t* dst, int64_t n) {
    if (format == DType::kFp8E4M3) {
        encode_fp8_row<true>(src, dst, n);
    } else if (format == DType::kFp8E5M2) {
        encode_fp8_row<false>(src, dst, n);
    } else {
        encode_hifloat8_row(src, dst, n);
    }
}

void vector_decode_row(DType format, const uint8_t* src, float* dst, int64_t n) {
    if (format == DType::kFp8E4M3) {
        decode_row<false>(decode_tables<fp8_e4m3_to_f32>(), src, dst, n);
    } else if (format == DType::kFp8E5M2) {
        decode_row<false>(decode_tables<fp8_e5m2_to_f32>(), src, dst, n);
    } else {
        decode_row<true>(decode_tables<hifloat8_to_f32>(), src, dst, n);
    }
}

#else

bool vector_codecs_available() { return false; }
void vector_encode_row(DType, const float*, uint8_t*, int64_t) {}
void vector_decode_row(DType, const uint8_t*, float*, int64_t) {}

#endif

}  // namespace moedist::quant
