// moedist/status.hpp — errors as data.
//
// Codes are the aclnn families of docs/contract.md §7, so a Status crosses the C boundary unchanged:
//   161001 a required tensor or name is null      161002 a dtype outside the contract
//   561002 a shape or attribute out of range       361001 found while running (peers, ids,
//   capacity)
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

#include "moedist/export.hpp"

namespace moedist {

enum class Code : int32_t {
    kOk = 0,
    kNullptr = 161001,
    kInvalidParam = 161002,
    kRuntime = 361001,
    kInnerTiling = 561002,
    kInternal = 561000,
};

class [[nodiscard]] Status {
public:
    Status() = default;
    Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

    static Status Ok() { return {}; }
    bool ok() const { return code_ == Code::kOk; }
    Code code() const { return code_; }
    int32_t raw_code() const { return static_cast<int32_t>(code_); }
    const std::string& message() const { return message_; }

private:
    Code code_ = Code::kOk;
    std::string message_;
};

// Thrown by the throwing C++ entry points; carries the same code and message as the Status.
class MOEDIST_API Error : public std::runtime_error {
public:
    explicit Error(const Status& status)
        : std::runtime_error(status.message()), code_(status.code()) {}
    Code code() const { return code_; }

private:
    Code code_;
};

inline void throw_if_error(const Status& status) {
    if (!status.ok()) throw Error(status);
}

}  // namespace moedist
