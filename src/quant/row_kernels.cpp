#include "quant/row_kernels.hpp"

#include <cmath>
#include <cstring>

#include "quant/float_bits.hpp"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
// One clone per x86-64 level, chosen at load time by CPUID (valgrind hides AVX-512 and gets v3).
#define MOEDIST_MULTIVERSION \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MOEDIST_MULTIVERSION
#endif

namespace moedist::quant {
namespace {

MOEDIST_MULTIVERSION
void load_bf16(const uint16_t* src, int64_t stride, float* dst, int64_t n) {
    if (stride == 1) {
        for (int64_t i = 0; i < n; ++i) dst[i] = bits_f32(static_cast<uint32_t>(src[i]) << 16);
    } else {
        for (int64_t i = 0; i < n; ++i) dst[i] = bits_f32(static_cast<uint32_t>(src[i * stride]) << 16);
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

MOEDIST_MULTIVERSION
void load_f16(const uint16_t* src, int64_t stride, float* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(src[i * stride]);
}

MOEDIST_MULTIVERSION
void store_f16(const float* src, uint16_t* dst, int64_t stride, int64_t n) {
    for (int64_t i = 0; i < n; ++i) dst[i * stride] = f32_to_f16(src[i]);
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
            const float quotient = row[i] / s32;
            const float q = rne_clamp(quotient, -127.0f, 127.0f);
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
        for (int64_t i = 0; i < n; ++i) row[i] = row[i] * smooth[i * smooth_stride];
    }
    float m = 0.0f;
    bool not_finite = false;
    for (int64_t i = 0; i < n; ++i) {
        const float a = std::fabs(row[i]);
        not_finite |= !(a <= 3.40282347e38f);  // NaN or Inf
        m = a > m ? a : m;
    }
    if (m == 0.0f && !not_finite) {
        for (int64_t i = 0; i < n; ++i) dst[i * dst_stride] = 0;
        return 0.0f;
    }
    const float ds = not_finite ? 0.0f : 127.0f / m;
    if (not_finite || std::isinf(ds)) {
        for (int64_t i = 0; i < n; ++i) dst[i * dst_stride] = 0;
        return bits_f32(0x7FC00000u);
    }
    for (int64_t i = 0; i < n; ++i) {
        const float scaled = row[i] * ds;
        dst[i * dst_stride] = static_cast<int8_t>(rne_clamp(scaled, -128.0f, 127.0f));
    }
    return 1.0f / ds;
}

}  // namespace moedist::quant
