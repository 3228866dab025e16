// Python tensors as moedist TensorViews, zero-copy: anything with __dlpack__ (torch CPU
// tensors, numpy >= 1.22 arrays) or the buffer protocol (numpy). bf16 comes as torch.bfloat16
// (DLPack kDLBfloat) or as a 16-bit integer view with dtype="bfloat16"; the 8-bit formats
// (fp8, hifloat8, e8m0) as uint8/int8 views with their dtype named.
#pragma once

#include <pybind11/pybind11.h>

#include <optional>
#include <string>

#include "moedist/tensor.hpp"

namespace moedist::python {

// A view and what keeps its memory alive while a call runs. For a torch tensor, `tensor` is the
// tensor itself: after the call its data_ptr() must still be view.data (see check_unmoved).
struct HeldView {
    TensorView view;
    pybind11::object owner;
    pybind11::object tensor;
};

// `dtype` (optional) reinterprets the elements: "bfloat16", "float16", "float8_e4m3fn",
// "float8_e5m2", "hifloat8", "float8_e8m0", "int8", "uint8" (the element size must match).
// `writable`: the call writes it (an output); read-only arrays are accepted as inputs only.
// Throws moedist.Error naming `name` (the Python argument) when the object is not a CPU tensor
// with data: 161002 for another type (a list, an int, a meta tensor), with a hint for a tensor
// that requires grad.
HeldView to_view(const pybind11::handle& tensor,
                 const char* name,
                 const std::optional<std::string>& dtype,
                 bool writable);

// Torch tensors must not be resized or freed by another thread while a call uses them (their
// memory is the call's, zero-copy). After the call: moedist.Error (361001) when one was, so the
// caller learns its results are void (its memory may have been written after it moved).
void check_unmoved(const HeldView& held, const char* name);

// The DType a moedist dtype name stands for; false when it names none.
bool parse_dtype(const std::string& text, DType* out);

}  // namespace moedist::python
