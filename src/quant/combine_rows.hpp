// The combine reduction of docs/contract.md §4.3 for one token, in registers: every element's K weighted
// rows (and the shared row) are added in order into a binary32 accumulator that never leaves a
// register, then rounded once. Stateless, no knowledge of ranks.
#pragma once

#include <cstdint>

#include "moedist/dtype.hpp"

namespace moedist::quant {

// True when the AVX-512 (F/BW) kernel below runs (not in sanitized builds, not under valgrind's
// CPUID); otherwise callers use the row-at-a-time path of row_kernels.hpp (the same bits).
bool combine_rows_available();

// out[h] = rne_dtype(acc) with acc = +0.0f, acc = fl32(acc + fl32(f32(rows[k][h]) · weights[k]))
// for k = 0..count-1, then acc = fl32(acc + f32(unweighted[j][h])) for j = 0..unweighted_count-1
// (shared rows, sharedExpertX). Rows are contiguous fp16/bf16 (dtype), `out` too; NaN outputs
// are the canonical quiet NaN with the sign.
void combine_rows(DType dtype,
                  const uint16_t* const* rows,
                  const float* weights,
                  int64_t count,
                  const uint16_t* const* unweighted,
                  int64_t unweighted_count,
                  uint16_t* out,
                  int64_t n);

}  // namespace moedist::quant
