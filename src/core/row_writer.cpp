#include "core/row_writer.hpp"

#include <algorithm>
#include <cstring>

#include "core/tensor_access.hpp"
#include "quant/dispatch_quant.hpp"
#include "quant/fused_rows.hpp"
#include "quant/row_kernels.hpp"
#include "util/memory_ops.hpp"

namespace moedist::core {

RowWriter::RowWriter(const RowFormat& format, int64_t hidden, RowDestination dest, bool streaming)
    : format_(format),
      hidden_(hidden),
      dest_(std::move(dest)),
      streaming_(streaming),
      row_(static_cast<std::size_t>(hidden)),
      bytes_(static_cast<std::size_t>(hidden)) {}

void RowWriter::copy_staged(const TensorView& rows,
                            const std::optional<TensorView>& scales,
                            int64_t token,
                            int64_t dst_row) {
    const TensorView& out = dest_.rows;
    const auto elem = dtype_size(out.dtype);
    if (out.stride(1) == 1) {
        util::copy_bytes(element_ptr(out, dst_row, 0),
                         element_ptr(rows, token, 0),
                         static_cast<std::size_t>(hidden_) * elem,
                         streaming_);
    } else {
        for (int64_t c = 0; c < hidden_; ++c)
            std::memcpy(element_ptr(out, dst_row, c), element_ptr(rows, token, c), elem);
    }
    if (!scales || !dest_.scales) return;
    const TensorView& dyn = *dest_.scales;
    const auto scale_elem = dtype_size(dyn.dtype);
    if (dyn.ndim == 1) {
        std::memcpy(element_ptr(dyn, dst_row), element_ptr(*scales, token), scale_elem);
        return;
    }
    for (int64_t c = 0; c < dyn.dim(1); ++c)
        std::memcpy(element_ptr(dyn, dst_row, c), element_ptr(*scales, token, c), scale_elem);
}

bool RowWriter::write_fused(const RowSource& src,
                            int64_t token,
                            int64_t dst_row,
                            int64_t scale_row) {
    const TensorView& out = dest_.rows;
    const TensorView& scales = src.scales;
    const RowKind kind = format_.kind;
    const int64_t hidden = hidden_;
    const bool fp8 = out.dtype == DType::kFp8E4M3 || out.dtype == DType::kFp8E5M2;
    if (!quant::fused_available() || src.x.stride(1) != 1 || out.stride(1) != 1) return false;
    const auto* x = reinterpret_cast<const uint16_t*>(element_ptr(src.x, token, 0));
    uint8_t* q = reinterpret_cast<uint8_t*>(element_ptr(out, dst_row, 0));
    if (kind == RowKind::kStatic && out.dtype == DType::kInt8) {
        const bool per_expert = scales.ndim == 2;
        const int64_t stride =
            per_expert ? scales.stride(1) : (scales.dim(0) == 1 ? 0 : scales.stride(0));
        if (stride > 1) return false;
        const auto* s = reinterpret_cast<const float*>(
            per_expert ? element_ptr(scales, scale_row, 0) : element_ptr(scales, 0));
        quant::fused_static_int8(src.x.dtype, x, s, stride, hidden, reinterpret_cast<int8_t*>(q));
        return true;
    }
    if (!fp8 || !(kind == RowKind::kPerToken || kind == RowKind::kPerGroup || kind == RowKind::kMx))
        return false;
    const TensorView& dyn = *dest_.scales;
    if (kind == RowKind::kMx) {
        const int64_t blocks = (hidden + 31) / 32;
        auto* row_bytes = reinterpret_cast<uint8_t*>(element_ptr(dyn, dst_row, 0));
        const bool direct = dyn.stride(1) == 1;  // the E8M0 bytes straight into the row
        uint8_t* bytes = direct ? row_bytes : bytes_.data();
        quant::fused_fp8_mx(src.x.dtype, x, out.dtype, hidden, q, bytes, streaming_);
        if (!direct) {
            for (int64_t b = 0; b < blocks; ++b) {
                *reinterpret_cast<uint8_t*>(element_ptr(dyn, dst_row, b)) = bytes[b];
            }
        }
        if (blocks % 2 == 1) *reinterpret_cast<uint8_t*>(element_ptr(dyn, dst_row, blocks)) = 0;
        return true;
    }
    const float* smooth = nullptr;
    if (scales.data != nullptr) {
        if (scales.stride(1) != 1) return false;
        smooth = reinterpret_cast<const float*>(element_ptr(scales, scale_row, 0));
    }
    // Per-group scales go straight into a contiguous dynamicScales row.
    const bool direct = kind == RowKind::kPerGroup && dyn.stride(1) == 1;
    float* block_scales =
        direct ? reinterpret_cast<float*>(element_ptr(dyn, dst_row, 0)) : row_.data();
    const int64_t block = kind == RowKind::kPerToken ? hidden : 128;
    quant::fused_fp8_dynamic(
        src.x.dtype, x, smooth, out.dtype, hidden, block, q, block_scales, streaming_);
    if (kind == RowKind::kPerToken) {
        store1<float>(dyn, dst_row, block_scales[0]);
    } else if (!direct) {
        for (int64_t g = 0; g * 128 < hidden; ++g) {
            std::memcpy(element_ptr(dyn, dst_row, g), &block_scales[g], sizeof(float));
        }
    }
    return true;
}

void RowWriter::write(const RowSource& src, int64_t token, int64_t dst_row, int64_t scale_row) {
    const TensorView& out = dest_.rows;
    const int64_t hidden = hidden_;
    const RowKind kind = format_.kind;
    if (!format_.quantizes()) {  // a bit copy; a pre-quantized x carries its token's scale along
        const auto elem = dtype_size(out.dtype);
        if (src.x.stride(1) == 1 && out.stride(1) == 1) {
            util::copy_bytes(element_ptr(out, dst_row, 0),
                             element_ptr(src.x, token, 0),
                             static_cast<std::size_t>(hidden) * elem,
                             streaming_);
        } else {
            for (int64_t c = 0; c < hidden; ++c) {
                std::memcpy(element_ptr(out, dst_row, c), element_ptr(src.x, token, c), elem);
            }
        }
        if (kind == RowKind::kCopyTokenScale)
            store1<float>(*dest_.scales, dst_row, load1<float>(src.scales, token));
        return;
    }
    float* row = row_.data();
    if (kind == RowKind::kPerToken && out.dtype == DType::kInt8) {  // the fused fast path
        const float* smooth = nullptr;
        int64_t smooth_stride = 1;
        if (src.scales.data != nullptr) {
            smooth = reinterpret_cast<const float*>(element_ptr(src.scales, scale_row, 0));
            smooth_stride = src.scales.stride(1);
        }
        const float scale =
            quant::quantize_row_int8_from(src.x.dtype,
                                          element_ptr(src.x, token, 0),
                                          src.x.stride(1),
                                          smooth,
                                          smooth_stride,
                                          row,
                                          reinterpret_cast<int8_t*>(element_ptr(out, dst_row, 0)),
                                          out.stride(1),
                                          hidden,
                                          streaming_);
        store1<float>(*dest_.scales, dst_row, scale);
        return;
    }
    if (write_fused(src, token, dst_row, scale_row)) return;
    quant::load_row_f32(src.x.dtype, element_ptr(src.x, token, 0), src.x.stride(1), row, hidden);
    const bool direct = out.stride(1) == 1;
    uint8_t* q = direct ? reinterpret_cast<uint8_t*>(element_ptr(out, dst_row, 0)) : bytes_.data();
    const TensorView& scales = src.scales;
    if (kind == RowKind::kStatic) {  // static: (1,), (H,) or per-expert (rows, H)
        const bool per_expert = scales.ndim == 2;
        const auto* s = reinterpret_cast<const float*>(
            per_expert ? element_ptr(scales, scale_row, 0) : element_ptr(scales, 0));
        const int64_t stride =
            per_expert ? scales.stride(1) : (scales.dim(0) == 1 ? 0 : scales.stride(0));
        quant::quantize_static(out.dtype, row, s, stride, q, hidden);
    } else if (kind == RowKind::kPerToken || kind == RowKind::kPerGroup) {  // per token / group
        if (scales.data != nullptr) {
            const auto* smooth = reinterpret_cast<const float*>(element_ptr(scales, scale_row, 0));
            for (int64_t i = 0; i < hidden; ++i) row[i] = row[i] * smooth[i * scales.stride(1)];
        }
        const TensorView& dyn = *dest_.scales;
        if (kind == RowKind::kPerToken) {
            store1<float>(dyn, dst_row, quant::quantize_dynamic(out.dtype, row, q, hidden));
        } else {
            for (int64_t g = 0; g * 128 < hidden; ++g) {
                const int64_t n = std::min<int64_t>(128, hidden - g * 128);
                const float scale =
                    quant::quantize_dynamic(out.dtype, row + g * 128, q + g * 128, n);
                std::memcpy(element_ptr(dyn, dst_row, g), &scale, sizeof(scale));
            }
        }
    } else {  // MX: blocks of 32, one E8M0 byte each, an even count per row
        const TensorView& dyn = *dest_.scales;
        int64_t blocks = 0;
        for (; blocks * 32 < hidden; ++blocks) {
            const int64_t n = std::min<int64_t>(32, hidden - blocks * 32);
            *reinterpret_cast<uint8_t*>(element_ptr(dyn, dst_row, blocks)) =
                quant::quantize_mx(out.dtype, row + blocks * 32, q + blocks * 32, n);
        }
        if (blocks % 2 == 1) *reinterpret_cast<uint8_t*>(element_ptr(dyn, dst_row, blocks)) = 0;
    }
    if (!direct) {
        for (int64_t c = 0; c < hidden; ++c)
            *reinterpret_cast<uint8_t*>(element_ptr(out, dst_row, c)) = q[c];
    }
}

}  // namespace moedist::core
