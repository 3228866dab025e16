// The scalar quantizers of SPEC §5 for the naive reference (see reference_quant.hpp).
//
// Floating-point discipline as in reference.cpp: every binary32 product or quotient is stored
// into a named `float` before use (and the build uses -ffp-contract=off); exponents and powers of
// two are computed exactly (std::ilogb, std::ldexp of 1). Nothing flushes subnormals.
#include "reference_quant.hpp"

#include <cmath>
#include <cstring>

#include "format_reference.hpp"

namespace moedist_ref::detail {
namespace {

float nan_scale() {  // the positive canonical NaN 0x7FC00000 (SPEC §5)
    const uint32_t b = 0x7FC00000u;
    float v = 0.0f;
    std::memcpy(&v, &b, sizeof v);
    return v;
}

// maxV of SPEC §5's dynamic modes.
float max_value(Elem target) {
    if (target == Elem::kInt8) return 127.0f;
    return target == Elem::kFp8E4M3 ? 448.0f : 57344.0f;
}

// What every q of a NaN / Inf row, group or block becomes: 0 for int8, the positive canonical
// NaN for fp8 (e4m3fn 0x7F, e5m2 0x7E).
uint8_t nan_code(Elem target) {
    if (target == Elem::kInt8) return 0x00;
    return target == Elem::kFp8E4M3 ? 0x7F : 0x7E;
}

}  // namespace

int rne_clamp(float v, int lo, int hi) {
    if (std::isnan(v)) return 0;
    const double d = static_cast<double>(v);
    if (d <= static_cast<double>(lo)) return lo;
    if (d >= static_cast<double>(hi)) return hi;
    const double fl = std::floor(d);
    const double frac = d - fl;  // exact: |d| < 2^8 here
    double r = fl;
    if (frac > 0.5) {
        r = fl + 1.0;
    } else if (frac == 0.5) {
        r = (std::fmod(fl, 2.0) == 0.0) ? fl : fl + 1.0;  // ties to even
    }
    return static_cast<int>(r);
}

float max_abs(const float* v, std::size_t n) {
    float m = 0.0f;
    for (std::size_t i = 0; i < n; ++i) {
        const float a = std::fabs(v[i]);
        if (std::isnan(a)) return a;
        if (a > m) m = a;
    }
    return m;
}

uint8_t encode8(Elem target, float v) {
    switch (target) {
        case Elem::kInt8:
            return static_cast<uint8_t>(static_cast<int8_t>(rne_clamp(v, -128, 127)));
        case Elem::kFp8E4M3:
            return format8_encode(Format8::kFp8E4M3, v);
        case Elem::kFp8E5M2:
            return format8_encode(Format8::kFp8E5M2, v);
        case Elem::kHiFloat8:
            return format8_encode(Format8::kHiFloat8, v);
        case Elem::kFloat16:
        case Elem::kBFloat16:
            break;
    }
    return 0;  // not an 8-bit target (validated before any call)
}

QuantRow quantize_static(const std::vector<float>& x, const float* s, bool broadcast, Elem target) {
    QuantRow w;
    w.bytes.assign(x.size(), 0);
    for (std::size_t j = 0; j < x.size(); ++j) {
        const float prod = x[j] * (broadcast ? s[0] : s[j]);  // fl32(x · s)
        w.bytes[j] = encode8(target, prod);
    }
    return w;
}

QuantRow quantize_dynamic(const std::vector<float>& y, Elem target, std::size_t group) {
    const std::size_t h = y.size();
    const float max_v = max_value(target);
    QuantRow w;
    w.bytes.assign(h, 0);
    for (std::size_t g0 = 0; g0 < h; g0 += group) {
        const std::size_t g1 = g0 + group < h ? g0 + group : h;  // the tail group holds the rest
        const float m = max_abs(y.data() + g0, g1 - g0);
        if (m == 0.0f) {  // q = 0 (already), scale +0
            w.scales.push_back(0.0f);
            continue;
        }
        const float ds = max_v / m;  // fl32(maxV / m); +Inf when m is NaN-free but tiny
        if (std::isnan(m) || std::isinf(m) || std::isinf(ds)) {
            for (std::size_t j = g0; j < g1; ++j) w.bytes[j] = nan_code(target);
            w.scales.push_back(nan_scale());
            continue;
        }
        for (std::size_t j = g0; j < g1; ++j) {
            const float v = y[j] * ds;  // fl32(y · ds)
            w.bytes[j] = encode8(target, v);
        }
        const float inv = 1.0f / ds;  // fl32(1 / ds)
        w.scales.push_back(inv);
    }
    return w;
}

QuantRow quantize_mx(const std::vector<float>& x, Elem target) {
    const std::size_t h = x.size();
    const std::size_t blocks = (h + 31) / 32;
    const int emax_elem = target == Elem::kFp8E4M3 ? 8 : 15;
    QuantRow w;
    w.bytes.assign(h, 0);
    w.scale_bytes.assign(2 * ((blocks + 1) / 2), 0x00);  // the pad byte (odd block count) is 0
    for (std::size_t b = 0; b < blocks; ++b) {
        const std::size_t j0 = 32 * b;
        const std::size_t j1 = j0 + 32 < h ? j0 + 32 : h;  // the tail block holds H mod 32
        const float amax = max_abs(x.data() + j0, j1 - j0);
        if (std::isnan(amax) || std::isinf(amax)) {  // a NaN or Inf in the block
            w.scale_bytes[b] = 0xFF;
            for (std::size_t j = j0; j < j1; ++j) w.bytes[j] = nan_code(target);
            continue;
        }
        if (amax == 0.0f) continue;      // b = 0, q = 0
        const int e = std::ilogb(amax);  // ⌊log2(amax)⌋ exactly, subnormal amax included
        const uint8_t sb = e8m0_from_biased(e - emax_elem + 127);  // clamp to [0, 254]
        w.scale_bytes[b] = sb;
        const float factor = std::ldexp(1.0f, 127 - static_cast<int>(sb));  // exact: 2^-127..2^127
        for (std::size_t j = j0; j < j1; ++j) {
            const float v = x[j] * factor;    // fl32(x · 2^(127 − b))
            w.bytes[j] = encode8(target, v);  // saturating fp8
        }
    }
    return w;
}

}  // namespace moedist_ref::detail
