// The first phase's vocabulary: each check returns the Status a caller reports, with the
// parameter's name, what it must be and what it was (docs/contract.md §7).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <sstream>
#include <string>

#include "moedist/moedist.hpp"

namespace moedist::core {

// H bound: keeps every product of H with a row count, a block count or a byte size in int64.
constexpr int64_t kMaxHidden = int64_t{1} << 24;
// The most bytes a token may carry beside its row (DispatchInputs::extra).
constexpr int64_t kMaxExtraBytes = int64_t{1} << 16;

inline std::string shape_of(const TensorView& t) {
    std::ostringstream out;
    out << '(';
    for (int32_t d = 0; d < t.ndim; ++d) out << (d ? ", " : "") << t.dim(d);
    out << (t.ndim == 1 ? ",)" : ")");
    return out.str();
}

inline Status fail(Code code,
                   const std::string& param,
                   const std::string& expected,
                   const std::string& actual) {
    return {code, param + " must be " + expected + ", got " + actual};
}

#define MOEDIST_REQUIRE(cond, code, param, expected, actual)     \
    do {                                                         \
        if (!(cond)) return fail(code, param, expected, actual); \
    } while (0)

inline Status check_dtype(const TensorView& t,
                          const char* name,
                          std::initializer_list<DType> allowed) {
    std::string names;
    for (DType d : allowed) {
        if (t.dtype == d) return Status::Ok();
        names += (names.empty() ? "" : " or ") + std::string(dtype_name(d));
    }
    return fail(Code::kInvalidParam, std::string(name) + " dtype", names, dtype_name(t.dtype));
}

// ndim, non-negative extents and strides, and a last element addressable in int64 bytes.
inline Status check_rank(const TensorView& t, const char* name, int32_t ndim) {
    if (t.ndim != ndim) {
        std::string actual = std::to_string(t.ndim);
        if (t.ndim >= 0 && t.ndim <= TensorView::kMaxDims) actual.append(" ").append(shape_of(t));
        return fail(Code::kInnerTiling, std::string(name) + " dims", std::to_string(ndim), actual);
    }
    __int128 last = 0;
    for (int32_t d = 0; d < ndim; ++d) {
        MOEDIST_REQUIRE(t.dim(d) >= 0 && t.stride(d) >= 0,
                        Code::kInnerTiling,
                        std::string(name) + " shape and strides",
                        "non-negative",
                        shape_of(t));
        // Each term is below 2^126; stopping once the sum passes 2^62 keeps it below 2^127.
        if (t.dim(d) > 0 && last < (static_cast<__int128>(1) << 62)) {
            last += static_cast<__int128>(t.dim(d) - 1) * t.stride(d);
        }
    }
    MOEDIST_REQUIRE(
        last < (static_cast<__int128>(1) << 62) &&
            last * static_cast<__int128>(dtype_size(t.dtype)) < (static_cast<__int128>(1) << 62),
        Code::kInnerTiling,
        std::string(name) + " extent",
        "below 2^62 bytes",
        shape_of(t));
    MOEDIST_REQUIRE(t.data != nullptr || t.numel() == 0,
                    Code::kNullptr,
                    std::string(name) + " data",
                    "non-null",
                    "nullptr");
    // Elements are read and written as their type: a misaligned address is undefined behaviour.
    const std::size_t align = dtype_size(t.dtype);
    const std::size_t misaligned = reinterpret_cast<uintptr_t>(t.data) % align;
    MOEDIST_REQUIRE(misaligned == 0 || t.numel() == 0,
                    Code::kInnerTiling,
                    std::string(name) + " data",
                    "aligned to its element size (" + std::to_string(align) + " bytes)",
                    "an address " + std::to_string(misaligned) + " bytes past a multiple of it");
    return Status::Ok();
}

inline Status check_min_1d(const TensorView& t,
                           const char* name,
                           int64_t min_len,
                           const std::string& what) {
    if (Status s = check_rank(t, name, 1); !s.ok()) return s;
    MOEDIST_REQUIRE(t.dim(0) >= min_len,
                    Code::kInnerTiling,
                    std::string(name) + " dim 0",
                    ">= " + what + " = " + std::to_string(min_len),
                    std::to_string(t.dim(0)));
    return Status::Ok();
}

inline std::string strides_of(const TensorView& t) {
    std::ostringstream out;
    out << '(';
    for (int32_t d = 0; d < t.ndim; ++d) out << (d ? ", " : "") << t.stride(d);
    out << (t.ndim == 1 ? ",)" : ")");
    return out.str();
}

// An output the call writes must give each element its own address (else writes collide and a
// huge dim needs no memory behind it): a stride >= 1 along every dim longer than 1 and, for 2-D
// views, the larger stride at least the extent of the other dim (rows, or columns, never
// interleave). Runs after check_rank.
inline Status check_no_overlap(const TensorView& t, const char* name) {
    if (t.numel() <= 1) return Status::Ok();
    bool distinct = true;
    for (int32_t d = 0; d < t.ndim; ++d) distinct = distinct && (t.dim(d) <= 1 || t.stride(d) >= 1);
    if (distinct && t.ndim == 2 && t.dim(0) > 1 && t.dim(1) > 1) {
        const int32_t inner = t.stride(0) <= t.stride(1) ? 0 : 1;
        const __int128 extent = static_cast<__int128>(t.dim(inner) - 1) * t.stride(inner) + 1;
        distinct = t.stride(1 - inner) >= extent;
    }
    MOEDIST_REQUIRE(distinct,
                    Code::kInnerTiling,
                    std::string(name) + " strides",
                    "non-overlapping (each element at its own address)",
                    strides_of(t) + " for shape " + shape_of(t));
    return Status::Ok();
}

#define MOEDIST_TRY(expr)                            \
    do {                                             \
        if (Status s_ = (expr); !s_.ok()) return s_; \
    } while (0)

}  // namespace moedist::core
