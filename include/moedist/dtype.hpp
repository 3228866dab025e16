// moedist/dtype.hpp — element types of the contract.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moedist {

enum class DType : int32_t {
    kFloat32,
    kFloat16,
    kBFloat16,
    kInt8,
    kUInt8,
    kInt32,
    kInt64,
    kBool,
    kFp8E4M3,   // OCP fp8 e4m3fn
    kFp8E5M2,   // OCP fp8 e5m2
    kHiFloat8,  // Ascend HiFloat8
    kE8M0,      // OCP MX scale byte
};

constexpr std::size_t dtype_size(DType dtype) {
    switch (dtype) {
        case DType::kFloat32:
        case DType::kInt32:
            return 4;
        case DType::kFloat16:
        case DType::kBFloat16:
            return 2;
        case DType::kInt64:
            return 8;
        default:
            return 1;
    }
}

constexpr const char* dtype_name(DType dtype) {
    switch (dtype) {
        case DType::kFloat32:
            return "float32";
        case DType::kFloat16:
            return "float16";
        case DType::kBFloat16:
            return "bfloat16";
        case DType::kInt8:
            return "int8";
        case DType::kUInt8:
            return "uint8";
        case DType::kInt32:
            return "int32";
        case DType::kInt64:
            return "int64";
        case DType::kBool:
            return "bool";
        case DType::kFp8E4M3:
            return "float8_e4m3fn";
        case DType::kFp8E5M2:
            return "float8_e5m2";
        case DType::kHiFloat8:
            return "hifloat8";
        case DType::kE8M0:
            return "float8_e8m0";
    }
    return "unknown";
}

}  // namespace moedist
