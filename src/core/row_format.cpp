#include "core/row_format.hpp"

#include "core/shapes.hpp"

namespace moedist::core {

RowFormat row_format(const MoeConfig& config,
                     DType x_dtype,
                     DType expand_dtype,
                     const std::optional<TensorView>& scales,
                     int64_t hidden) {
    RowFormat f;
    f.source = x_dtype;
    f.target = expand_dtype;
    switch (static_cast<QuantMode>(config.quant_mode)) {
        case QuantMode::kNone:
            f.kind = dtype_size(x_dtype) == 1 ? RowKind::kCopyTokenScale : RowKind::kCopy;
            f.scales = f.kind == RowKind::kCopyTokenScale ? ScaleLayout::kPerRow : ScaleLayout::kNone;
            break;
        case QuantMode::kStatic:
            f.kind = RowKind::kStatic;
            f.per_expert = scales && scales->ndim == 2;
            break;
        case QuantMode::kPerToken:
            f.kind = RowKind::kPerToken;
            f.scales = ScaleLayout::kPerRow;
            f.per_expert = scales.has_value();
            break;
        case QuantMode::kPerGroup:
            f.kind = RowKind::kPerGroup;
            f.scales = ScaleLayout::kPerGroup;
            f.per_expert = scales.has_value();
            break;
        case QuantMode::kMx:
            f.kind = RowKind::kMx;
            f.scales = ScaleLayout::kMxBytes;
            break;
    }
    f.scale_columns = f.makes_scales() ? scale_columns(config.quant(), hidden) : 0;
    return f;
}

}  // namespace moedist::core
