// Fused AVX-512 row quantizers: read a contiguous fp16/bf16 source row, quantize, write the
// 8-bit row, with the bits of the generic path (dispatch_quant.hpp) — two passes over each block
// (its maximum, then scale/round/encode) and no binary32 row in memory. Available only when the
// CPU has AVX-512 F/BW/VL and the build is not sanitized; callers fall back to the generic path.
#pragma once

#include <cstdint>

#include "moedist/dtype.hpp"

namespace moedist::quant {

bool fused_available();

// Per-token (block = n) or per-group (block = 128) dynamic quantization to fp8 e4m3/e5m2 with
// optional smooth scales (contiguous); scales_out[b] = the block's scale (docs/contract.md §5 rules).
void fused_fp8_dynamic(DType source,
                       const uint16_t* src,
                       const float* smooth,
                       DType target,
                       int64_t n,
                       int64_t block,
                       uint8_t* dst,
                       float* scales_out,
                       bool streaming = false);

// MX quantization to fp8 e4m3/e5m2 in blocks of 32; scale_bytes[b] = the block's E8M0 byte.
void fused_fp8_mx(DType source,
                  const uint16_t* src,
                  DType target,
                  int64_t n,
                  uint8_t* dst,
                  uint8_t* scale_bytes,
                  bool streaming = false);

// Static int8 quantization: q = clamp(rne(fl32(x * s)), -128, 127), NaN -> 0; `s` is one scale
// (s_stride 0) or a contiguous row (s_stride 1).
void fused_static_int8(
    DType source, const uint16_t* src, const float* s, int64_t s_stride, int64_t n, int8_t* dst);

// Vector rows of the 8-bit codecs (AVX-512 F/BW/VL/VBMI; not in sanitized builds), the bits of
// the scalar functions of fp8.hpp on every input; quant/fp8.cpp's row helpers use them when
// vector_codecs_available(). `format` is kFp8E4M3, kFp8E5M2 or kHiFloat8. Nothing is read or
// written past n.
bool vector_codecs_available();
void vector_encode_row(DType format, const float* src, uint8_t* dst, int64_t n);
void vector_decode_row(DType format, const uint8_t* src, float* dst, int64_t n);

}  // namespace moedist::quant
