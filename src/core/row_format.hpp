// How dispatch turns a token into an expandX row (docs/contract.md §5), decided once in the first
// phase from the attributes and the tensors' dtypes. Every later step asks this descriptor rather
// than comparing the quant mode: the codecs (RowWriter), the staging decision, the scale layout
// the outputs need, and which smooth row an expert uses.
#pragma once

#include <cstdint>
#include <optional>

#include "moedist/config.hpp"
#include "moedist/dtype.hpp"
#include "moedist/tensor.hpp"

namespace moedist::core {

enum class RowKind {
    kCopy,             // mode 0, fp16/bf16 x: a bit copy
    kCopyTokenScale,   // mode 0, pre-quantized fp8/hifloat8 x: a bit copy, its token's scale along
    kStatic,           // mode 1: static int8 / hifloat8 with (1,), (H,) or per-expert scales
    kPerToken,         // mode 2: dynamic, one scale per row
    kPerGroup,         // mode 3: dynamic, one scale per group of 128
    kMx,               // mode 4: OCP MX, one E8M0 byte per block of 32
};

enum class ScaleLayout {
    kNone,        // dispatch writes no dynamicScales
    kPerRow,      // 1-D fp32, one per row
    kPerGroup,    // 2-D fp32 (rows, ⌈H/128⌉)
    kMxBytes,     // 2-D bytes (rows, 2·⌈⌈H/32⌉/2⌉), the pad byte 0
};

struct RowFormat {
    RowKind kind = RowKind::kCopy;
    DType source = DType::kBFloat16;  // x
    DType target = DType::kBFloat16;  // expandX
    ScaleLayout scales = ScaleLayout::kNone;
    int64_t scale_columns = 0;        // dynamicScales dim 1 (0: 1-D)
    bool per_expert = false;          // the row depends on its expert: smooth or per-expert scales

    bool makes_scales() const { return scales != ScaleLayout::kNone; }
    bool quantizes() const { return kind != RowKind::kCopy && kind != RowKind::kCopyTokenScale; }
    // The row is the same for every destination: the sender quantizes each token once.
    bool staged_once() const { return quantizes() && !per_expert; }
};

// The format of `config`'s dispatch with x of `x_dtype`, expandX of `expand_dtype` and the given
// scales (shape matters for static scales: (E[+1], H) depends on the expert).
RowFormat row_format(const MoeConfig& config,
                     DType x_dtype,
                     DType expand_dtype,
                     const std::optional<TensorView>& scales,
                     int64_t hidden);

}  // namespace moedist::core
