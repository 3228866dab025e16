#include "quant/dispatch_quant.hpp"

#include <cmath>
#include <cstring>

#include "quant/float_bits.hpp"
#include "quant/fp8.hpp"

#include "util/cpu.hpp"

namespace moedist::quant {
namespace {

// The largest |v| bit pattern: for non-negative floats bit order is value order, and NaN and Inf
// sort above every finite value.
MOEDIST_MULTIVERSION
uint32_t abs_max_bits(const float* v, int64_t n) {
    uint32_t m = 0;
    for (int64_t i = 0; i < n; ++i) {
        const uint32_t a = f32_bits(v[i]) & 0x7FFFFFFFu;
        m = a > m ? a : m;
    }
    return m;
}

MOEDIST_MULTIVERSION
void scale_in_place(float* v, float s, int64_t n) {
    for (int64_t i = 0; i < n; ++i) v[i] = v[i] * s;
}

MOEDIST_MULTIVERSION
void convert_int8(const float* src, uint8_t* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        const float v = src[i];
        float r = __builtin_nearbyintf(v);
        r = r < -128.0f ? -128.0f : r;
        r = r > 127.0f ? 127.0f : r;
        r = v != v ? 0.0f : r;  // NaN -> 0
        dst[i] = static_cast<uint8_t>(static_cast<int8_t>(static_cast<int32_t>(r)));
    }
}

uint8_t positive_nan(DType target) {
    return target == DType::kFp8E4M3 ? uint8_t{0x7F}
                                     : (target == DType::kFp8E5M2 ? uint8_t{0x7E} : uint8_t{0x80});
}

// 2^k as binary32 for k in [-127, 127] (2^-127 is the subnormal 0x00400000).
float power_of_two(int k) {
    if (k >= -126) return bits_f32(static_cast<uint32_t>(k + 127) << 23);
    return bits_f32(0x00400000u);
}

}  // namespace

float max_value(DType target) {
    switch (target) {
        case DType::kFp8E4M3:
            return 448.0f;
        case DType::kFp8E5M2:
            return 57344.0f;
        case DType::kHiFloat8:
            return 32768.0f;
        default:
            return 127.0f;
    }
}

void convert_row(DType target, const float* src, uint8_t* dst, int64_t n) {
    switch (target) {
        case DType::kFp8E4M3:
            f32_row_to_fp8_e4m3(src, dst, n);
            return;
        case DType::kFp8E5M2:
            f32_row_to_fp8_e5m2(src, dst, n);
            return;
        case DType::kHiFloat8:
            f32_row_to_hifloat8(src, dst, n);
            return;
        default:
            convert_int8(src, dst, n);
            return;
    }
}

void quantize_static(
    DType target, float* x, const float* s, int64_t s_stride, uint8_t* dst, int64_t n) {
    if (s_stride == 0) {
        scale_in_place(x, s[0], n);
    } else {
        for (int64_t i = 0; i < n; ++i) x[i] = x[i] * s[i * s_stride];
    }
    convert_row(target, x, dst, n);
}

float quantize_dynamic(DType target, float* y, uint8_t* dst, int64_t n) {
    const uint32_t m_bits = abs_max_bits(y, n);
    if (m_bits == 0) {
        std::memset(dst, 0, static_cast<std::size_t>(n));
        return 0.0f;
    }
    const bool not_finite = m_bits >= 0x7F800000u;
    const float ds = not_finite ? 0.0f : max_value(target) / bits_f32(m_bits);
    if (not_finite || std::isinf(ds)) {
        std::memset(
            dst, target == DType::kInt8 ? 0 : positive_nan(target), static_cast<std::size_t>(n));
        return bits_f32(0x7FC00000u);
    }
    scale_in_place(y, ds, n);
    convert_row(target, y, dst, n);
    return 1.0f / ds;
}

uint8_t quantize_mx(DType target, float* x, uint8_t* dst, int64_t n) {
    const uint32_t a_bits = abs_max_bits(x, n);
    if (a_bits >= 0x7F800000u) {
        std::memset(dst, positive_nan(target), static_cast<std::size_t>(n));
        return kE8M0NaN;
    }
    if (a_bits == 0) {
        std::memset(dst, 0, static_cast<std::size_t>(n));
        return 0;
    }
    // floor(log2(amax)), exactly: the exponent of a normal amax; of a subnormal m·2^-149,
    // -149 + the index of m's highest set bit.
    const int biased = static_cast<int>(a_bits >> 23);
    const int e = biased > 0 ? biased - 127 : -149 + (31 - __builtin_clz(a_bits & 0x7FFFFFu));
    const int emax_elem = target == DType::kFp8E4M3 ? 8 : 15;
    int b = e - emax_elem + 127;
    b = b < 0 ? 0 : (b > 254 ? 254 : b);
    scale_in_place(x, power_of_two(127 - b), n);
    convert_row(target, x, dst, n);
    return static_cast<uint8_t>(b);
}

}  // namespace moedist::quant
