// moedist/tensor.hpp — a non-owning view of a strided tensor in (host) memory.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>

#include "moedist/dtype.hpp"

namespace moedist {

// `data` is the address of element [0, …, 0] (any storage offset already applied).
// strides are in elements, may be any non-negative value; the contract's tensors have 1 or 2 dims.
struct TensorView {
    static constexpr int kMaxDims = 4;

    void* data = nullptr;
    DType dtype = DType::kFloat32;
    int32_t ndim = 0;
    std::array<int64_t, kMaxDims> shape{};
    std::array<int64_t, kMaxDims> strides{};

    // A row-major contiguous view.
    static TensorView contiguous(void* data, DType dtype, std::initializer_list<int64_t> shape) {
        TensorView view;
        view.data = data;
        view.dtype = dtype;
        for (int64_t extent : shape) {
            if (view.ndim == kMaxDims) break;
            view.shape[static_cast<std::size_t>(view.ndim++)] = extent;
        }
        int64_t stride = 1;
        for (int32_t d = view.ndim - 1; d >= 0; --d) {
            view.strides[static_cast<std::size_t>(d)] = stride;
            stride *= view.shape[static_cast<std::size_t>(d)];
        }
        return view;
    }

    int64_t dim(int32_t d) const { return shape[static_cast<std::size_t>(d)]; }
    int64_t stride(int32_t d) const { return strides[static_cast<std::size_t>(d)]; }
    // Element count; saturates at INT64_MAX (and is meaningless for negative extents, which the
    // first phase rejects).
    int64_t numel() const {
        int64_t n = 1;
        for (int32_t d = 0; d < ndim; ++d) {
            if (dim(d) == 0) return 0;
        }
        for (int32_t d = 0; d < ndim; ++d) {
            if (__builtin_mul_overflow(n, dim(d), &n)) return INT64_MAX;
        }
        return n;
    }
};

}  // namespace moedist
