// The CPU "device" behind acl/acl.h and aclnn/acl_meta.h: devices are logical ranks, device memory
// is 64-byte aligned host memory, contexts and streams are small registered objects.
//
// Invariants:
// - Every handle the runtime gives out (context, stream, allocation, tensor) is in a registry of
//   State until it is destroyed; a call given any other pointer returns an error and touches
//   nothing, so no argument, however bad, makes the runtime crash or free foreign memory.
// - Thread-local state holds values only (current device id, current context as an opaque value);
//   it is never dereferenced, so destroying a context another thread has current is harmless.
// - No exception leaves a C function: each body runs inside guarded(), which maps it to a code.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "acl/acl.h"
#include "aclnn/acl_meta.h"
#include "aclnn/opdev/fp16_t.h"
#include "runtime/memory_registry.hpp"
#include "runtime/objects.hpp"
#include "runtime/stream.hpp"
#include "runtime/tensor_registry.hpp"

namespace moedist::runtime {
namespace {

struct Context {
    int32_t device;
    bool is_default;  // made by aclrtSetDevice; aclrtDestroyContext refuses it
};

struct Stream {
    int32_t device;
    mutable std::atomic<int> pending_error{0};  // first error parked by an operation
};

struct State {
    std::mutex mutex;
    std::unordered_set<const Context*> contexts;
    std::unordered_map<int32_t, Context*> default_contexts;  // device -> its implicit context
    std::unordered_map<int32_t, int64_t> device_refs;        // device -> aclrtSetDevice count
    std::unordered_set<const Stream*> streams;
    std::unordered_set<const aclTensor*> tensors;
    int64_t init_count = 0;
};

State& state() {
    static State* instance = new State();  // never destroyed: usable during static teardown
    return *instance;
}

thread_local int32_t t_device = -1;
thread_local aclrtContext t_context = nullptr;
thread_local int t_default_stream_error = 0;
thread_local std::string t_pending_message;
thread_local std::string t_returned_message;

template <typename Body>
aclError guarded(const char* api, Body&& body) noexcept {
    try {
        return body();
    } catch (const std::bad_alloc&) {
        set_recent_error(std::string(api) + " memory must be available, got out of memory");
        return ACL_ERROR_BAD_ALLOC;
    } catch (const std::exception& e) {
        set_recent_error(std::string(api) + " must succeed, got internal error: " + e.what());
        return ACL_ERROR_INTERNAL_ERROR;
    } catch (...) {
        set_recent_error(std::string(api) + " must succeed, got unknown internal error");
        return ACL_ERROR_INTERNAL_ERROR;
    }
}

aclError fail(aclError code, const std::string& message) {
    set_recent_error(message);
    return code;
}

std::string pointer_text(const void* p) {
    char text[32];
    std::snprintf(text, sizeof(text), "%p", p);
    return text;
}

// The caller holds state().mutex. The device's implicit context, created on first use.
Context* default_context_locked(State& s, int32_t device) {
    auto it = s.default_contexts.find(device);
    if (it != s.default_contexts.end()) return it->second;
    auto* context = new Context{device, true};
    s.default_contexts.emplace(device, context);
    s.contexts.insert(context);
    return context;
}

aclError allocate(const char* api, void** ptr, std::size_t size, bool host) {
    if (ptr == nullptr)
        return fail(ACL_ERROR_INVALID_PARAM,
                    std::string(api) + " devPtr must be non-null, got null");
    *ptr = memory::allocate(size, host);
    if (*ptr == nullptr) {
        return fail(
            ACL_ERROR_RT_MEMORY_ALLOCATION,
            std::string(api) + " size must be allocatable, got " + std::to_string(size) + " bytes");
    }
    return ACL_SUCCESS;
}

aclError release(const char* api, void* ptr, bool host) {
    if (ptr == nullptr)
        return fail(ACL_ERROR_INVALID_PARAM,
                    std::string(api) + " pointer must be non-null, got null");
    if (!memory::release(ptr, host)) {
        return fail(ACL_ERROR_INVALID_PARAM,
                    std::string(api) + " pointer must come from " +
                        (host ? "aclrtMallocHost" : "aclrtMalloc") + " and be live, got " +
                        pointer_text(ptr));
    }
    return ACL_SUCCESS;
}

aclError copy(const char* api,
              void* dst,
              std::size_t dest_max,
              const void* src,
              std::size_t count,
              int kind) {
    if (count > dest_max) {
        return fail(ACL_ERROR_INVALID_PARAM,
                    std::string(api) + " count must be <= destMax (" + std::to_string(dest_max) +
                        "), got " + std::to_string(count));
    }
    if (kind < ACL_MEMCPY_HOST_TO_HOST || kind > ACL_MEMCPY_INTER_DEVICE_TO_DEVICE) {
        return fail(
            ACL_ERROR_INVALID_PARAM,
            std::string(api) + " kind must be an aclrtMemcpyKind, got " + std::to_string(kind));
    }
    if (count == 0) return ACL_SUCCESS;
    if (dst == nullptr || src == nullptr) {
        return fail(ACL_ERROR_INVALID_PARAM,
                    std::string(api) + " dst and src must be non-null, got " + pointer_text(dst) +
                        " and " + pointer_text(src));
    }
    if (!memory::range_fits(dst, count) || !memory::range_fits(src, count)) {
        return fail(ACL_ERROR_INVALID_PARAM,
                    std::string(api) + " count must fit its allocation, got " +
                        std::to_string(count) + " bytes");
    }
    std::memmove(dst, src, count);
    return ACL_SUCCESS;
}

aclError fill(const char* api, void* ptr, std::size_t max_count, int32_t value, std::size_t count) {
    if (count > max_count) {
        return fail(ACL_ERROR_INVALID_PARAM,
                    std::string(api) + " count must be <= maxCount (" + std::to_string(max_count) +
                        "), got " + std::to_string(count));
    }
    if (count == 0) return ACL_SUCCESS;
    if (ptr == nullptr)
        return fail(ACL_ERROR_INVALID_PARAM,
                    std::string(api) + " devPtr must be non-null, got null");
    if (!memory::range_fits(ptr, count)) {
        return fail(ACL_ERROR_INVALID_PARAM,
                    std::string(api) + " count must fit its allocation, got " +
                        std::to_string(count) + " bytes");
    }
    std::memset(ptr, static_cast<unsigned char>(value & 0xFF), count);
    return ACL_SUCCESS;
}

// Takes the error parked on `stream` (0 when none). The caller holds state().mutex for non-null.
aclError take_stream_error_locked(State& s, aclrtStream stream, const char* api) {
    if (stream == nullptr) return std::exchange(t_default_stream_error, 0);
    auto* handle = static_cast<Stream*>(stream);
    if (s.streams.count(handle) == 0) {
        return fail(
            ACL_ERROR_INVALID_PARAM,
            std::string(api) + " stream must be a live stream, got " + pointer_text(stream));
    }
    return handle->pending_error.exchange(0);
}

// Bytes per element of every aclDataType with a whole-byte size; 0 otherwise.
std::size_t acl_dtype_bytes(aclDataType dtype) {
    switch (dtype) {
        case ACL_FLOAT:
        case ACL_INT32:
        case ACL_UINT32:
        case ACL_COMPLEX32:
            return 4;
        case ACL_FLOAT16:
        case ACL_BF16:
        case ACL_INT16:
        case ACL_UINT16:
            return 2;
        case ACL_INT8:
        case ACL_UINT8:
        case ACL_BOOL:
        case ACL_HIFLOAT8:
        case ACL_FLOAT8_E5M2:
        case ACL_FLOAT8_E4M3FN:
        case ACL_FLOAT8_E8M0:
            return 1;
        case ACL_INT64:
        case ACL_UINT64:
        case ACL_DOUBLE:
        case ACL_COMPLEX64:
            return 8;
        case ACL_COMPLEX128:
            return 16;
        default:
            return 0;
    }
}

aclTensor* tensor_error(const std::string& message) {
    set_recent_error("aclCreateTensor " + message);
    return nullptr;
}

aclTensor* create_tensor(const int64_t* view_dims,
                         uint64_t view_dims_num,
                         aclDataType data_type,
                         const int64_t* stride,
                         int64_t offset,
                         aclFormat format,
                         const int64_t* storage_dims,
                         uint64_t storage_dims_num,
                         void* tensor_data) {
    constexpr uint64_t kMaxStorageDims = 64;
    if (view_dims_num > static_cast<uint64_t>(moedist::TensorView::kMaxDims)) {
        return tensor_error(
            "viewDimsNum must be <= " + std::to_string(moedist::TensorView::kMaxDims) + ", got " +
            std::to_string(view_dims_num));
    }
    if (view_dims_num > 0 && view_dims == nullptr)
        return tensor_error("viewDims must be non-null, got null");
    if (storage_dims_num > kMaxStorageDims) {
        return tensor_error("storageDimsNum must be <= " + std::to_string(kMaxStorageDims) +
                            ", got " + std::to_string(storage_dims_num));
    }
    if (storage_dims_num > 0 && storage_dims == nullptr)
        return tensor_error("storageDims must be non-null, got null");
    if (offset < 0) return tensor_error("offset must be >= 0, got " + std::to_string(offset));

    const auto ndim = static_cast<std::size_t>(view_dims_num);
    std::vector<int64_t> dims(view_dims, view_dims + ndim);
    std::vector<int64_t> strides(ndim, 1);
    for (std::size_t d = 0; d < ndim; ++d) {
        if (dims[d] < 0)
            return tensor_error("viewDims[" + std::to_string(d) + "] must be >= 0, got " +
                                std::to_string(dims[d]));
    }
    if (stride != nullptr) {
        strides.assign(stride, stride + ndim);
        for (std::size_t d = 0; d < ndim; ++d) {
            if (strides[d] < 0) {
                return tensor_error("stride[" + std::to_string(d) + "] must be >= 0, got " +
                                    std::to_string(strides[d]));
            }
        }
    } else {
        int64_t running = 1;
        for (std::size_t d = ndim; d-- > 0;) {
            strides[d] = running;
            if (dims[d] != 0 && __builtin_mul_overflow(running, dims[d], &running)) {
                return tensor_error(
                    "viewDims must describe an addressable tensor, got an overflowing shape");
            }
        }
    }

    // Last element reached by the view, in elements from storage start (-1: the view is empty).
    int64_t last = offset;
    bool empty = false;
    for (std::size_t d = 0; d < ndim; ++d) {
        if (dims[d] == 0) empty = true;
        int64_t reach = 0;
        if (dims[d] > 0 && (__builtin_mul_overflow(dims[d] - 1, strides[d], &reach) ||
                            __builtin_add_overflow(last, reach, &last))) {
            return tensor_error(
                "viewDims and stride must describe an addressable tensor, got an overflowing view");
        }
    }
    if (storage_dims_num > 0 && !empty) {
        int64_t capacity = 1;
        for (uint64_t d = 0; d < storage_dims_num; ++d) {
            if (storage_dims[d] < 0) {
                return tensor_error("storageDims[" + std::to_string(d) + "] must be >= 0, got " +
                                    std::to_string(storage_dims[d]));
            }
            if (__builtin_mul_overflow(capacity, storage_dims[d], &capacity)) {
                return tensor_error(
                    "storageDims must describe an addressable tensor, got an overflowing shape");
            }
        }
        if (last >= capacity) {
            return tensor_error("view must lie inside storageDims (" + std::to_string(capacity) +
                                " elements), got a view reaching element " + std::to_string(last));
        }
    }

    const std::size_t elem_bytes = acl_dtype_bytes(data_type);
    char* data = static_cast<char*>(tensor_data);
    if (offset != 0) {
        int64_t byte_offset = 0;
        if (elem_bytes == 0) {
            return tensor_error("offset must be 0 for dataType " +
                                std::to_string(static_cast<int>(data_type)) + ", got " +
                                std::to_string(offset));
        }
        if (__builtin_mul_overflow(offset, static_cast<int64_t>(elem_bytes), &byte_offset)) {
            return tensor_error("offset must be addressable, got " + std::to_string(offset));
        }
        data = tensor_data == nullptr ? nullptr : data + byte_offset;
    }

    auto tensor = std::make_unique<aclTensor>();
    tensor->acl_dtype = data_type;
    moedist::DType dtype = moedist::DType::kFloat32;
    tensor->dtype_known = to_moedist_dtype(data_type, &dtype);
    tensor->view_dims = dims;
    tensor->strides = strides;
    tensor->offset = offset;
    tensor->format = format;
    tensor->storage_dims.assign(storage_dims,
                                storage_dims + static_cast<std::size_t>(storage_dims_num));
    tensor->storage = tensor_data;
    tensor->view.data = data;
    tensor->view.dtype = dtype;
    tensor->view.ndim = static_cast<int32_t>(ndim);
    for (std::size_t d = 0; d < ndim; ++d) {
        tensor->view.shape[d] = dims[d];
        tensor->view.strides[d] = strides[d];
    }
    tensor->block = find_block(tensor_data);
    if (!tensor->block.found() && data != nullptr) tensor->block = find_block(data);
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mutex);
    s.tensors.insert(tensor.get());
    return tensor.release();
}

}  // namespace

bool to_moedist_dtype(aclDataType acl_dtype, moedist::DType* out) {
    moedist::DType dtype{};
    switch (acl_dtype) {
        case ACL_FLOAT:
            dtype = moedist::DType::kFloat32;
            break;
        case ACL_FLOAT16:
            dtype = moedist::DType::kFloat16;
            break;
        case ACL_BF16:
            dtype = moedist::DType::kBFloat16;
            break;
        case ACL_INT8:
            dtype = moedist::DType::kInt8;
            break;
        case ACL_UINT8:
            dtype = moedist::DType::kUInt8;
            break;
        case ACL_INT32:
            dtype = moedist::DType::kInt32;
            break;
        case ACL_INT64:
            dtype = moedist::DType::kInt64;
            break;
        case ACL_BOOL:
            dtype = moedist::DType::kBool;
            break;
        case ACL_FLOAT8_E4M3FN:
            dtype = moedist::DType::kFp8E4M3;
            break;
        case ACL_FLOAT8_E5M2:
            dtype = moedist::DType::kFp8E5M2;
            break;
        case ACL_HIFLOAT8:
            dtype = moedist::DType::kHiFloat8;
            break;
        case ACL_FLOAT8_E8M0:
            dtype = moedist::DType::kE8M0;
            break;
        default:
            return false;
    }
    if (out != nullptr) *out = dtype;
    return true;
}

void set_recent_error(const std::string& message) {
    try {
        t_pending_message = message;
    } catch (...) {
        t_pending_message.clear();  // out of memory: keep no message rather than throw
    }
}

void stream_record_error(aclrtStream stream, int code) {
    if (code == 0) return;
    if (stream == nullptr) {
        if (t_default_stream_error == 0) t_default_stream_error = code;
        return;
    }
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mutex);
    auto* handle = static_cast<Stream*>(stream);
    if (s.streams.count(handle) == 0) return;
    int expected = 0;
    handle->pending_error.compare_exchange_strong(expected, code);
}

bool stream_is_live(aclrtStream stream) {
    if (stream == nullptr) return true;
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mutex);
    return s.streams.count(static_cast<const Stream*>(stream)) != 0;
}

bool tensor_is_live(const aclTensor* tensor) {
    if (tensor == nullptr) return false;
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mutex);
    return s.tensors.count(tensor) != 0;
}

}  // namespace moedist::runtime

using moedist::runtime::fail;
using moedist::runtime::guarded;
using moedist::runtime::pointer_text;
using moedist::runtime::state;
using moedist::runtime::State;

extern "C" {

aclError aclInit(const char* /*configPath*/) {
    return guarded("aclInit", [] {
        State& s = state();
        std::lock_guard<std::mutex> lock(s.mutex);
        ++s.init_count;
        return ACL_SUCCESS;
    });
}

aclError aclFinalize(void) {
    return guarded("aclFinalize", [] {
        {
            State& s = state();
            std::lock_guard<std::mutex> lock(s.mutex);
            s.init_count = 0;
        }
        std::cout.flush();
        std::cerr.flush();
        std::fflush(stdout);
        std::fflush(stderr);
        return ACL_SUCCESS;
    });
}

const char* aclGetRecentErrMsg(void) {
    using moedist::runtime::t_pending_message;
    using moedist::runtime::t_returned_message;
    if (t_pending_message.empty()) return nullptr;
    t_returned_message.swap(t_pending_message);
    t_pending_message.clear();
    return t_returned_message.c_str();
}

float aclFloat16ToFloat(aclFloat16 value) { return op::fp16_detail::to_float(value); }

aclFloat16 aclFloatToFloat16(float value) {
    return op::fp16_detail::from_double(static_cast<double>(value));
}

size_t aclDataTypeSize(aclDataType dataType) { return moedist::runtime::acl_dtype_bytes(dataType); }

aclError aclrtSetDevice(int32_t deviceId) {
    return guarded("aclrtSetDevice", [&] {
        if (deviceId < 0) {
            return fail(ACL_ERROR_RT_INVALID_DEVICEID,
                        "aclrtSetDevice deviceId must be >= 0, got " + std::to_string(deviceId));
        }
        State& s = state();
        std::lock_guard<std::mutex> lock(s.mutex);
        moedist::runtime::Context* context = moedist::runtime::default_context_locked(s, deviceId);
        ++s.device_refs[deviceId];
        moedist::runtime::t_device = deviceId;
        moedist::runtime::t_context = context;
        return ACL_SUCCESS;
    });
}

aclError aclrtResetDevice(int32_t deviceId) {
    return guarded("aclrtResetDevice", [&] {
        if (deviceId < 0) {
            return fail(ACL_ERROR_RT_INVALID_DEVICEID,
                        "aclrtResetDevice deviceId must be >= 0, got " + std::to_string(deviceId));
        }
        State& s = state();
        std::lock_guard<std::mutex> lock(s.mutex);
        auto it = s.device_refs.find(deviceId);
        if (it != s.device_refs.end() && --it->second <= 0) s.device_refs.erase(it);
        if (moedist::runtime::t_device == deviceId) {
            moedist::runtime::t_device = -1;
            moedist::runtime::t_context = nullptr;
        }
        return ACL_SUCCESS;
    });
}

aclError aclrtGetDevice(int32_t* deviceId) {
    return guarded("aclrtGetDevice", [&] {
        if (deviceId == nullptr)
            return fail(ACL_ERROR_INVALID_PARAM,
                        "aclrtGetDevice deviceId must be non-null, got null");
        if (moedist::runtime::t_device < 0) {
            return fail(ACL_ERROR_RT_CONTEXT_NULL,
                        "aclrtGetDevice current device must be set, got none");
        }
        *deviceId = moedist::runtime::t_device;
        return ACL_SUCCESS;
    });
}

aclError aclrtSynchronizeDevice(void) {
    return guarded("aclrtSynchronizeDevice", [] {
        State& s = state();
        std::lock_guard<std::mutex> lock(s.mutex);
        int first = std::exchange(moedist::runtime::t_default_stream_error, 0);
        for (const moedist::runtime::Stream* stream : s.streams) {
            if (stream->device != moedist::runtime::t_device) continue;
            const int code = stream->pending_error.exchange(0);
            if (first == 0) first = code;
        }
        return first;
    });
}

aclError aclrtCreateContext(aclrtContext* context, int32_t deviceId) {
    return guarded("aclrtCreateContext", [&] {
        if (context == nullptr)
            return fail(ACL_ERROR_INVALID_PARAM,
                        "aclrtCreateContext context must be non-null, got null");
        if (deviceId < 0) {
            return fail(
                ACL_ERROR_RT_INVALID_DEVICEID,
                "aclrtCreateContext deviceId must be >= 0, got " + std::to_string(deviceId));
        }
        auto created =
            std::make_unique<moedist::runtime::Context>(moedist::runtime::Context{deviceId, false});
        State& s = state();
        std::lock_guard<std::mutex> lock(s.mutex);
        s.contexts.insert(created.get());
        *context = created.release();
        moedist::runtime::t_device = deviceId;
        moedist::runtime::t_context = *context;
        return ACL_SUCCESS;
    });
}

aclError aclrtDestroyContext(aclrtContext context) {
    return guarded("aclrtDestroyContext", [&] {
        auto* handle = static_cast<moedist::runtime::Context*>(context);
        {
            State& s = state();
            std::lock_guard<std::mutex> lock(s.mutex);
            if (handle == nullptr || s.contexts.count(handle) == 0 || handle->is_default) {
                return fail(ACL_ERROR_INVALID_PARAM,
                            "aclrtDestroyContext context must come from aclrtCreateContext, got " +
                                pointer_text(context));
            }
            s.contexts.erase(handle);
        }
        if (moedist::runtime::t_context == context) moedist::runtime::t_context = nullptr;
        delete handle;
        return ACL_SUCCESS;
    });
}

aclError aclrtSetCurrentContext(aclrtContext context) {
    return guarded("aclrtSetCurrentContext", [&] {
        State& s = state();
        std::lock_guard<std::mutex> lock(s.mutex);
        auto* handle = static_cast<const moedist::runtime::Context*>(context);
        if (handle == nullptr || s.contexts.count(handle) == 0) {
            return fail(ACL_ERROR_INVALID_PARAM,
                        "aclrtSetCurrentContext context must be a live context, got " +
                            pointer_text(context));
        }
        moedist::runtime::t_device = handle->device;
        moedist::runtime::t_context = context;
        return ACL_SUCCESS;
    });
}

aclError aclrtGetCurrentContext(aclrtContext* context) {
    return guarded("aclrtGetCurrentContext", [&] {
        if (context == nullptr)
            return fail(ACL_ERROR_INVALID_PARAM,
                        "aclrtGetCurrentContext context must be non-null, got null");
        *context = nullptr;
        if (moedist::runtime::t_context != nullptr) {
            *context = moedist::runtime::t_context;
            return ACL_SUCCESS;
        }
        if (moedist::runtime::t_device < 0) {
            return fail(ACL_ERROR_RT_CONTEXT_NULL,
                        "aclrtGetCurrentContext current context must be set, got none");
        }
        State& s = state();
        std::lock_guard<std::mutex> lock(s.mutex);
        *context = moedist::runtime::default_context_locked(s, moedist::runtime::t_device);
        moedist::runtime::t_context = *context;
        return ACL_SUCCESS;
    });
}

aclError aclrtMalloc(void** devPtr, size_t size, aclrtMemMallocPolicy /*policy*/) {
    return guarded("aclrtMalloc",
                   [&] { return moedist::runtime::allocate("aclrtMalloc", devPtr, size, false); });
}

aclError aclrtFree(void* devPtr) {
    return guarded("aclrtFree",
                   [&] { return moedist::runtime::release("aclrtFree", devPtr, false); });
}

aclError aclrtMallocHost(void** hostPtr, size_t size) {
    return guarded("aclrtMallocHost", [&] {
        return moedist::runtime::allocate("aclrtMallocHost", hostPtr, size, true);
    });
}

aclError aclrtFreeHost(void* hostPtr) {
    return guarded("aclrtFreeHost",
                   [&] { return moedist::runtime::release("aclrtFreeHost", hostPtr, true); });
}

aclError aclrtMemcpy(
    void* dst, size_t destMax, const void* src, size_t count, aclrtMemcpyKind kind) {
    return guarded("aclrtMemcpy", [&] {
        return moedist::runtime::copy(
            "aclrtMemcpy", dst, destMax, src, count, static_cast<int>(kind));
    });
}

aclError aclrtMemset(void* devPtr, size_t maxCount, int32_t value, size_t count) {
    return guarded("aclrtMemset", [&] {
        return moedist::runtime::fill("aclrtMemset", devPtr, maxCount, value, count);
    });
}

aclError aclrtMemcpyAsync(void* dst,
                          size_t destMax,
                          const void* src,
                          size_t count,
                          aclrtMemcpyKind kind,
                          aclrtStream stream) {
    return guarded("aclrtMemcpyAsync", [&] {
        if (!moedist::runtime::stream_is_live(stream)) {
            return fail(
                ACL_ERROR_INVALID_PARAM,
                "aclrtMemcpyAsync stream must be a live stream, got " + pointer_text(stream));
        }
        return moedist::runtime::copy(
            "aclrtMemcpyAsync", dst, destMax, src, count, static_cast<int>(kind));
    });
}

aclError aclrtMemsetAsync(
    void* devPtr, size_t maxCount, int32_t value, size_t count, aclrtStream stream) {
    return guarded("aclrtMemsetAsync", [&] {
        if (!moedist::runtime::stream_is_live(stream)) {
            return fail(
                ACL_ERROR_INVALID_PARAM,
                "aclrtMemsetAsync stream must be a live stream, got " + pointer_text(stream));
        }
        return moedist::runtime::fill("aclrtMemsetAsync", devPtr, maxCount, value, count);
    });
}

aclError aclrtCreateStream(aclrtStream* stream) {
    return guarded("aclrtCreateStream", [&] {
        if (stream == nullptr)
            return fail(ACL_ERROR_INVALID_PARAM,
                        "aclrtCreateStream stream must be non-null, got null");
        auto created = std::make_unique<moedist::runtime::Stream>();
        created->device = moedist::runtime::t_device;
        State& s = state();
        std::lock_guard<std::mutex> lock(s.mutex);
        s.streams.insert(created.get());
        *stream = created.release();
        return ACL_SUCCESS;
    });
}

aclError aclrtDestroyStream(aclrtStream stream) {
    return guarded("aclrtDestroyStream", [&] {
        auto* handle = static_cast<moedist::runtime::Stream*>(stream);
        {
            State& s = state();
            std::lock_guard<std::mutex> lock(s.mutex);
            if (handle == nullptr || s.streams.count(handle) == 0) {
                return fail(ACL_ERROR_INVALID_PARAM,
                            "aclrtDestroyStream stream must come from aclrtCreateStream, got " +
                                pointer_text(stream));
            }
            s.streams.erase(handle);
        }
        delete handle;
        return ACL_SUCCESS;
    });
}

aclError aclrtSynchronizeStream(aclrtStream stream) {
    return guarded("aclrtSynchronizeStream", [&] {
        State& s = state();
        std::lock_guard<std::mutex> lock(s.mutex);
        return moedist::runtime::take_stream_error_locked(s, stream, "aclrtSynchronizeStream");
    });
}

aclError aclrtSynchronizeStreamWithTimeout(aclrtStream stream, int32_t timeout) {
    return guarded("aclrtSynchronizeStreamWithTimeout", [&] {
        if (timeout < -1) {
            return fail(ACL_ERROR_INVALID_PARAM,
                        "aclrtSynchronizeStreamWithTimeout timeout must be -1 or >= 0, got " +
                            std::to_string(timeout));
        }
        State& s = state();
        std::lock_guard<std::mutex> lock(s.mutex);
        return moedist::runtime::take_stream_error_locked(
            s, stream, "aclrtSynchronizeStreamWithTimeout");
    });
}

aclTensor* aclCreateTensor(const int64_t* viewDims,
                           uint64_t viewDimsNum,
                           aclDataType dataType,
                           const int64_t* stride,
                           int64_t offset,
                           aclFormat format,
                           const int64_t* storageDims,
                           uint64_t storageDimsNum,
                           void* tensorData) {
    try {
        return moedist::runtime::create_tensor(viewDims,
                                               viewDimsNum,
                                               dataType,
                                               stride,
                                               offset,
                                               format,
                                               storageDims,
                                               storageDimsNum,
                                               tensorData);
    } catch (...) {
        moedist::runtime::set_recent_error(
            "aclCreateTensor memory must be available, got an allocation failure");
        return nullptr;
    }
}

aclnnStatus aclDestroyTensor(const aclTensor* tensor) {
    if (tensor == nullptr) return ACLNN_SUCCESS;
    try {
        {
            State& s = state();
            std::lock_guard<std::mutex> lock(s.mutex);
            if (s.tensors.erase(tensor) == 0) {
                moedist::runtime::set_recent_error(
                    "aclDestroyTensor tensor must be a live aclTensor, got " +
                    pointer_text(tensor));
                return ACLNN_ERR_PARAM_INVALID;
            }
        }
        delete tensor;
        return ACLNN_SUCCESS;
    } catch (...) {
        moedist::runtime::set_recent_error(
            "aclDestroyTensor must succeed, got an exception (out of memory)");
        return ACLNN_ERR_RUNTIME_ERROR;
    }
}

}  // extern "C"
