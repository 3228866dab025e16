// Row kernels on binary32 working rows: loads and stores of fp16/bf16 rows, and the separately
// rounded binary32 steps of combine (docs/contract.md §4). Stateless, no knowledge of ranks.
//
// Every product and sum here is one binary32 operation (the library builds with
// -ffp-contract=off); no step flushes subnormals.
#pragma once

#include <cstdint>

#include "moedist/dtype.hpp"

namespace moedist::quant {

// dst[i] = f32(src[i * stride]) for a fp16 or bf16 row.
void load_row_f32(DType dtype, const void* src, int64_t stride, float* dst, int64_t n);

// dst[i * stride] = rne_dtype(src[i]) for a fp16 or bf16 row.
void store_row_f32(DType dtype, const float* src, void* dst, int64_t stride, int64_t n);

// row[i] = f32(rne_dtype(fl32(row[i] + other[i]))): the TP reduce of docs/contract.md §4.1.
void add_round_row(DType dtype, float* row, const float* other, int64_t n);

// The int8 return path of docs/contract.md §4.2 applied in place: per block of 8 (tail H mod 8),
// s32 = fl32(max|v| * fl32(1/127)), q = clamp(rne_int(rne_fp16(fl32(v / s32))), -127, 127)
// (rounded twice, as the device's cast chain does: 101.49 -> 101.5 -> 102), and
// row[i] = f32(rne_dtype(fl32(f32(q) * f32(rne_dtype(s32))))). A block with max 0 gives +0.
void comm_quant_round_trip(DType dtype, float* row, int64_t n);

// acc[i] = fl32(acc[i] + fl32(row[i] * weight)).
void accumulate_weighted(float* acc, const float* row, float weight, int64_t n);

// acc[i] = fl32(acc[i] + row[i]).
void accumulate(float* acc, const float* row, int64_t n);

// quantize_row_int8 of a fp16/bf16 source row (element stride `src_stride`); `scratch` (n
// floats) serves the generic path. `streaming`: dst is part of an output larger than the caches.
float quantize_row_int8_from(DType dtype,
                             const void* src,
                             int64_t src_stride,
                             const float* smooth,
                             int64_t smooth_stride,
                             float* scratch,
                             int8_t* dst,
                             int64_t dst_stride,
                             int64_t n,
                             bool streaming);

// acc[i] = fl32(acc[i] + fl32(f32(src[i * stride]) * weight)) straight from a fp16/bf16 row:
// load and accumulate_weighted fused (bitwise the same result).
void accumulate_weighted_from(
    DType dtype, const void* src, int64_t stride, float weight, float* acc, int64_t n);

// Per-token dynamic int8 quantization of docs/contract.md §5 (quantMode 2).
// y = smooth ? fl32(x * smooth) : x (in place in `row`), m = max|y|, ds = fl32(127 / m),
// q = clamp(rne(fl32(y * ds)), -128, 127) with NaN -> 0, returns the scale fl32(1 / ds).
// m == 0: q = 0, scale +0. m NaN/Inf or ds = +Inf: q = 0, scale = 0x7FC00000.
float quantize_row_int8(float* row,
                        const float* smooth,
                        int64_t smooth_stride,
                        int8_t* dst,
                        int64_t dst_stride,
                        int64_t n);

}  // namespace moedist::quant
