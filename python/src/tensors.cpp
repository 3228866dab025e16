#include "tensors.hpp"

#include <cstring>
#include <stdexcept>

#include "dlpack.hpp"
#include "errors.hpp"

namespace py = pybind11;

namespace moedist::python {
namespace {

bool dtype_of_dlpack(const DLDataType& t, DType* out) {
    if (t.lanes != 1) return false;
    switch (t.code) {
        case kDLFloat:
            if (t.bits == 32)
                *out = DType::kFloat32;
            else if (t.bits == 16)
                *out = DType::kFloat16;
            else
                return false;
            return true;
        case kDLBfloat:
            if (t.bits != 16) return false;
            *out = DType::kBFloat16;
            return true;
        case kDLInt:
            if (t.bits == 8)
                *out = DType::kInt8;
            else if (t.bits == 16)
                *out = DType::kBFloat16;  // a 16-bit view; dtype= names it
            else if (t.bits == 32)
                *out = DType::kInt32;
            else if (t.bits == 64)
                *out = DType::kInt64;
            else
                return false;
            return true;
        case kDLUInt:
            if (t.bits == 8)
                *out = DType::kUInt8;
            else if (t.bits == 16)
                *out = DType::kBFloat16;
            else
                return false;
            return true;
        case kDLBool:
            *out = DType::kBool;
            return true;
        default:
            return false;
    }
}

bool dtype_of_format(const std::string& f, std::size_t itemsize, DType* out) {
    char c = f.empty() ? '?' : f.back();
    switch (c) {
        case 'f':
            *out = DType::kFloat32;
            return itemsize == 4;
        case 'e':
            *out = DType::kFloat16;
            return itemsize == 2;
        case 'b':
            *out = DType::kInt8;
            return true;
        case 'B':
            *out = DType::kUInt8;
            return true;
        case 'h':
        case 'H':
            *out = DType::kBFloat16;  // a 16-bit view; dtype= names it
            return true;
        case 'i':
        case 'l':
        case 'q':
            *out = itemsize == 4 ? DType::kInt32 : DType::kInt64;
            return itemsize == 4 || itemsize == 8;
        case '?':
            *out = DType::kBool;
            return itemsize == 1;
        default:
            return false;
    }
}

}  // namespace

bool parse_dtype(const std::string& text, DType* out) {
    static const std::pair<const char*, DType> kNames[] = {{"float32", DType::kFloat32},
                                                           {"float16", DType::kFloat16},
                                                           {"bfloat16", DType::kBFloat16},
                                                           {"int8", DType::kInt8},
                                                           {"uint8", DType::kUInt8},
                                                           {"int32", DType::kInt32},
                                                           {"int64", DType::kInt64},
                                                           {"bool", DType::kBool},
                                                           {"float8_e4m3fn", DType::kFp8E4M3},
                                                           {"float8_e5m2", DType::kFp8E5M2},
                                                           {"hifloat8", DType::kHiFloat8},
                                                           {"float8_e8m0", DType::kE8M0}};
    for (const auto& [name, dtype] : kNames) {
        if (text == name) {
            *out = dtype;
            return true;
        }
    }
    return false;
}

HeldView to_view(const py::handle& tensor,
                 const char* name,
                 const std::optional<std::string>& dtype) {
    HeldView held;
    TensorView& v = held.view;
    if (tensor.is_none())
        throw_error(Code::kNullptr, std::string(name) + " must be a tensor, got None");
    if (py::hasattr(tensor, "__dlpack__")) {
        py::object capsule = tensor.attr("__dlpack__")();
        auto* managed =
            static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule.ptr(), "dltensor"));
        if (managed == nullptr)
            throw_error(Code::kInvalidParam, std::string(name) + " must export a DLPack tensor");
        const DLTensor& t = managed->dl_tensor;
        if (t.device.device_type != kDLCPU)
            throw_error(Code::kInvalidParam,
                        std::string(name) + " must be a CPU tensor, got device type " +
                            std::to_string(t.device.device_type));
        if (t.ndim > TensorView::kMaxDims)
            throw_error(
                Code::kInnerTiling,
                std::string(name) + " dims must be at most 4, got " + std::to_string(t.ndim));
        if (!dtype_of_dlpack(t.dtype, &v.dtype))
            throw_error(Code::kInvalidParam,
                        std::string(name) +
                            " dtype must be one moedist supports, got DLPack code " +
                            std::to_string(t.dtype.code) + " bits " + std::to_string(t.dtype.bits));
        v.data = static_cast<char*>(t.data) + t.byte_offset;
        v.ndim = t.ndim;
        int64_t stride = 1;
        for (int d = t.ndim - 1; d >= 0; --d) {
            v.shape[static_cast<std::size_t>(d)] = t.shape[d];
            v.strides[static_cast<std::size_t>(d)] = t.strides != nullptr ? t.strides[d] : stride;
            stride *= t.shape[d];
        }
        held.owner = capsule;  // its deleter runs when the capsule goes, after the call
    } else {
        py::buffer buffer = py::reinterpret_borrow<py::buffer>(tensor);
        py::buffer_info info = buffer.request(/*writable=*/true);
        if (info.ndim > TensorView::kMaxDims)
            throw_error(
                Code::kInnerTiling,
                std::string(name) + " dims must be at most 4, got " + std::to_string(info.ndim));
        if (!dtype_of_format(info.format, static_cast<std::size_t>(info.itemsize), &v.dtype))
            throw_error(Code::kInvalidParam,
                        std::string(name) +
                            " dtype must be one moedist supports, got buffer format '" +
                            info.format + "'");
        v.data = info.ptr;
        v.ndim = static_cast<int32_t>(info.ndim);
        for (py::ssize_t d = 0; d < info.ndim; ++d) {
            v.shape[static_cast<std::size_t>(d)] = info.shape[static_cast<std::size_t>(d)];
            if (info.strides[static_cast<std::size_t>(d)] % info.itemsize != 0)
                throw_error(Code::kInnerTiling,
                            std::string(name) + " strides must be whole elements");
            v.strides[static_cast<std::size_t>(d)] =
                info.strides[static_cast<std::size_t>(d)] / info.itemsize;
        }
        held.owner = py::reinterpret_borrow<py::object>(tensor);
    }
    if (dtype) {
        DType named;
        if (!parse_dtype(*dtype, &named))
            throw_error(
                Code::kInvalidParam,
                std::string(name) + " dtype name must be one moedist knows, got '" + *dtype + "'");
        if (dtype_size(named) != dtype_size(v.dtype))
            throw_error(Code::kInvalidParam,
                        std::string(name) + " must have " + std::to_string(dtype_size(named)) +
                            "-byte elements to be read as " + *dtype + ", got " +
                            std::to_string(dtype_size(v.dtype)));
        v.dtype = named;
    }
    return held;
}

}  // namespace moedist::python
