#include "tensors.hpp"

#include <cstring>
#include <stdexcept>

#include "dlpack.hpp"
#include "errors.hpp"

namespace py = pybind11;

namespace moedist::python {
namespace {

// 16-bit integer elements: bf16 or fp16 bits, which only a dtype name can tell apart.
constexpr DType kUnnamed16 = static_cast<DType>(-16);

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
                *out = kUnnamed16;  // a 16-bit view: a dtype name must say what it holds
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
                *out = kUnnamed16;
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
            *out = kUnnamed16;  // a 16-bit view: a dtype name must say what it holds
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

namespace {

std::string type_name(const py::handle& object) {
    return py::str(py::type::handle_of(object).attr("__name__")).cast<std::string>();
}

// The view of `tensor` through DLPack; false when it does not export one (read-only numpy
// arrays: then the buffer protocol is asked).
bool dlpack_view(const py::handle& tensor, const char* name, HeldView* held) {
    // torch.bool does not cross DLPack (torch 1.13: "Bool type is not supported"): its bytes do,
    // as uint8, named bool again below (xActiveMask).
    const bool torch_bool = py::hasattr(tensor, "dtype") &&
                            py::str(tensor.attr("dtype")).cast<std::string>() == "torch.bool";
    py::object capsule;
    try {
        capsule = torch_bool ? tensor.attr("view")(py::module_::import("torch").attr("uint8"))
                                   .attr("__dlpack__")()
                             : tensor.attr("__dlpack__")();
    } catch (py::error_already_set& e) {
        const std::string why = py::str(e.value()).cast<std::string>();  // no traceback
        if (e.matches(PyExc_BufferError)) return false;  // numpy: read-only
        if (why.find("require gradient") != std::string::npos ||
            why.find("requires_grad") != std::string::npos) {
            throw_error(Code::kInvalidParam,
                        std::string(name) +
                            " must not require grad, got a tensor that does: pass "
                            "tensor.detach() (moedist's calls do not record gradients)");
        }
        throw_error(Code::kInvalidParam,
                    std::string(name) + " must be a CPU tensor with data, got a " + type_name(tensor) +
                        " that cannot export it (" + why.substr(0, 120) + ")");
    }
    auto* managed = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule.ptr(), "dltensor"));
    if (managed == nullptr) {
        PyErr_Clear();
        throw_error(Code::kInvalidParam, std::string(name) + " must export a DLPack tensor");
    }
    const DLTensor& t = managed->dl_tensor;
    TensorView& v = held->view;
    if (t.device.device_type != kDLCPU)
        throw_error(Code::kInvalidParam,
                    std::string(name) + " must be a CPU tensor, got device type " +
                        std::to_string(t.device.device_type));
    if (t.ndim > TensorView::kMaxDims)
        throw_error(Code::kInnerTiling,
                    std::string(name) + " dims must be at most 4, got " + std::to_string(t.ndim));
    if (!dtype_of_dlpack(t.dtype, &v.dtype))
        throw_error(Code::kInvalidParam,
                    std::string(name) + " dtype must be one moedist supports, got DLPack code " +
                        std::to_string(t.dtype.code) + " bits " + std::to_string(t.dtype.bits));
    if (torch_bool) v.dtype = DType::kBool;
    v.data = static_cast<char*>(t.data) + t.byte_offset;
    v.ndim = t.ndim;
    int64_t stride = 1;
    for (int d = t.ndim - 1; d >= 0; --d) {
        v.shape[static_cast<std::size_t>(d)] = t.shape[d];
        v.strides[static_cast<std::size_t>(d)] = t.strides != nullptr ? t.strides[d] : stride;
        stride *= t.shape[d];
    }
    held->owner = capsule;  // its deleter runs when the capsule goes, after the call
    if (py::hasattr(tensor, "data_ptr")) held->tensor = py::reinterpret_borrow<py::object>(tensor);
    return true;
}

}  // namespace

HeldView to_view(const py::handle& tensor,
                 const char* name,
                 const std::optional<std::string>& dtype,
                 bool writable) {
    HeldView held;
    TensorView& v = held.view;
    if (tensor.is_none())
        throw_error(Code::kNullptr, std::string(name) + " must be a tensor, got None");
    const bool has_dlpack = py::hasattr(tensor, "__dlpack__");
    if (!has_dlpack && !PyObject_CheckBuffer(tensor.ptr())) {
        throw_error(Code::kInvalidParam,
                    std::string(name) + " must be a tensor (a torch CPU tensor or a numpy array), got " +
                        type_name(tensor));
    }
    if (!has_dlpack || !dlpack_view(tensor, name, &held)) {
        py::buffer buffer = py::reinterpret_borrow<py::buffer>(tensor);
        py::buffer_info info;
        try {
            info = buffer.request(writable);
        } catch (py::error_already_set& e) {
            throw_error(Code::kInvalidParam,
                        std::string(name) + (writable ? " must be a writable tensor (an output), got: "
                                                      : " must be readable, got: ") +
                            py::str(e.value()).cast<std::string>().substr(0, 120));
        }
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
    if (v.dtype == kUnnamed16 && !dtype) {
        throw_error(Code::kInvalidParam,
                    std::string(name) +
                        " holds 16-bit integers, which moedist cannot read on their own: pass (" +
                        name + ", \"bfloat16\") or (" + name +
                        ", \"float16\") to say which, or a torch.bfloat16 / float16 tensor");
    }
    if (v.dtype == kUnnamed16) v.dtype = DType::kBFloat16;  // its size; the name decides
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

void check_unmoved(const HeldView& held, const char* name) {
    if (!held.tensor || held.view.data == nullptr) return;
    // A view starts at data_ptr() (DLPack's byte_offset is folded into data already).
    const auto now = held.tensor.attr("data_ptr")().cast<uintptr_t>();
    if (now != reinterpret_cast<uintptr_t>(held.view.data)) {
        throw_error(Code::kRuntime,
                    std::string(name) +
                        " must keep its memory while a call uses it, got it resized or replaced by "
                        "another thread during the call (the call's results are void; its memory "
                        "may have been written after it was freed)");
    }
}

}  // namespace moedist::python
