// One dispatch row: a sender's token converted as quantMode says (docs/contract.md §5) and written into a
// row of a destination (the receiver's expandX and dynamicScales, or the sender's staging of
// rows it quantizes once for every receiver). Stateless across rows but for scratch.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/row_format.hpp"
#include "moedist/tensor.hpp"

namespace moedist::core {

// What a row is read from: the sender's x and its scales tensor (pre-quantized x: per-token
// scales; static: the quantization scales; modes 2/3: smooth scales; data null when absent).
struct RowSource {
    TensorView x;
    TensorView scales;
};

// Where rows go: a 2-D row view (expandX's dtype) and, when the mode makes scales, their view
// (1-D per row, or 2-D rows of groups / MX bytes).
struct RowDestination {
    TensorView rows;
    std::optional<TensorView> scales;
};

class RowWriter {
public:
    // `streaming`: the destination is larger than the caches (streaming stores).
    RowWriter(const RowFormat& format, int64_t hidden, RowDestination dest, bool streaming);

    // Row `token` of `src` into row `dst_row`. `scale_row` is the row of a per-expert scales
    // tensor: e + (S > 0) for MoE expert e, 0 for the shared expert.
    void write(const RowSource& src, int64_t token, int64_t dst_row, int64_t scale_row);

    // Row `token` of rows a sender staged (rows of the destination's dtype, scales of its
    // layout) copied as it is into row `dst_row`.
    void copy_staged(const TensorView& rows,
                     const std::optional<TensorView>& scales,
                     int64_t token,
                     int64_t dst_row);

private:
    // The fused AVX-512 paths (quant/fused_rows.hpp) for contiguous rows: static int8 and the
    // fp8 targets of modes 2, 3 and 4. False when the row must take the generic path.
    bool write_fused(const RowSource& src, int64_t token, int64_t dst_row, int64_t scale_row);

    RowFormat format_;
    int64_t hidden_;
    RowDestination dest_;
    bool streaming_;
    std::vector<float> row_;
    std::vector<uint8_t> bytes_;
};

}  // namespace moedist::core
