// Element addressing of strided TensorViews (strides in elements, checked in the first phase).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "moedist/tensor.hpp"
#include "util/memory_ops.hpp"

namespace moedist::core {

inline char* element_ptr(const TensorView& view, int64_t i) {
    return static_cast<char*>(view.data) +
           i * view.stride(0) * static_cast<int64_t>(dtype_size(view.dtype));
}

inline char* element_ptr(const TensorView& view, int64_t i, int64_t j) {
    return static_cast<char*>(view.data) +
           (i * view.stride(0) + j * view.stride(1)) * static_cast<int64_t>(dtype_size(view.dtype));
}

template <class T>
T load1(const TensorView& view, int64_t i) {
    T value;
    std::memcpy(&value, element_ptr(view, i), sizeof(T));
    return value;
}

template <class T>
T load2(const TensorView& view, int64_t i, int64_t j) {
    T value;
    std::memcpy(&value, element_ptr(view, i, j), sizeof(T));
    return value;
}

template <class T>
void store1(const TensorView& view, int64_t i, T value) {
    std::memcpy(element_ptr(view, i), &value, sizeof(T));
}

// Zeroes rows [begin, end) of a 2D view (streaming stores when `streaming`).
inline void zero_rows(const TensorView& view, int64_t begin, int64_t end, bool streaming = false) {
    if (begin >= end) return;
    const auto elem = static_cast<int64_t>(dtype_size(view.dtype));
    const int64_t cols = view.dim(1);
    if (view.stride(1) == 1 && view.stride(0) == cols) {
        util::zero_bytes(element_ptr(view, begin, 0),
                         static_cast<std::size_t>((end - begin) * cols * elem),
                         streaming);
        return;
    }
    for (int64_t r = begin; r < end; ++r) {
        if (view.stride(1) == 1) {
            util::zero_bytes(
                element_ptr(view, r, 0), static_cast<std::size_t>(cols * elem), streaming);
        } else {
            for (int64_t c = 0; c < cols; ++c)
                std::memset(element_ptr(view, r, c), 0, static_cast<std::size_t>(elem));
        }
    }
}

// Zeroes elements [begin, end) of a 1D view.
inline void zero_elements(const TensorView& view, int64_t begin, int64_t end) {
    if (begin >= end) return;
    const auto elem = static_cast<int64_t>(dtype_size(view.dtype));
    if (view.stride(0) == 1) {
        std::memset(element_ptr(view, begin), 0, static_cast<std::size_t>((end - begin) * elem));
        return;
    }
    for (int64_t i = begin; i < end; ++i)
        std::memset(element_ptr(view, i), 0, static_cast<std::size_t>(elem));
}

}  // namespace moedist::core
