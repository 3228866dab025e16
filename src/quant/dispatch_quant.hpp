// The quantizers of docs/contract.md §5 for one dispatch row or block, on binary32 working values. Stateless,
// no rank knowledge. Targets: int8, fp8 e4m3fn, fp8 e5m2, hifloat8.
#pragma once

#include <cstdint>

#include "moedist/dtype.hpp"

namespace moedist::quant {

// maxV of the dynamic modes: 127 (int8), 448 (e4m3fn), 57344 (e5m2), 32768 (hifloat8).
float max_value(DType target);

// dst[i] = convert_target(src[i]): int8 clamp(rne(v), -128, 127) with NaN -> 0; fp8 RNE,
// saturating, NaN -> canonical with sign; hifloat8 per docs/contract.md §5.
void convert_row(DType target, const float* src, uint8_t* dst, int64_t n);

// Static quantization (quantMode 1): x[i] = fl32(x[i] * s[i * s_stride]) in place (s_stride 0:
// one scale), then converted into dst.
void quantize_static(
    DType target, float* x, const float* s, int64_t s_stride, uint8_t* dst, int64_t n);

// One per-token row or per-group block (quantMode 2/3) of smoothed values y (modified in place):
// m = max|y|, ds = fl32(maxV / m), q = convert(fl32(y * ds)), returns fl32(1 / ds).
// m = 0: q = 0, returns +0. m NaN/Inf or ds = +Inf: q = 0 (int8) or the positive canonical NaN
// (fp8), returns the NaN 0x7FC00000.
float quantize_dynamic(DType target, float* y, uint8_t* dst, int64_t n);

// One MX block (quantMode 4) of at most 32 values x (modified in place): the E8M0 scale byte
// b = clamp(floor(log2(amax)) - emax_elem + 127, 0, 254), q = fp8(fl32(x * 2^(127 - b))).
// amax = 0: b = 0, q = 0. A NaN or Inf: b = 0xFF, every q the positive canonical NaN.
uint8_t quantize_mx(DType target, float* x, uint8_t* dst, int64_t n);

}  // namespace moedist::quant
