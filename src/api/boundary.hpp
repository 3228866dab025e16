// The noexcept boundaries of the C and C++ APIs (phase one, the op calls, try_dispatch,
// try_combine): whatever the work throws becomes 361001 ACLNN_ERR_RUNTIME_ERROR with a one-line
// message, so no API returns a code outside docs/contract.md §7 and nothing crosses the C boundary.
#pragma once

#include <exception>
#include <new>
#include <string>
#include <utility>

#include "core/ops.hpp"

namespace moedist::api {

// A Status of `code` with the message `text()` builds; when building it throws (no memory left),
// the message is "out of memory", which fits std::string's inline buffer and allocates nothing.
template <class Text>
Status failure(Code code, Text&& text) noexcept {
    try {
        return {code, text()};
    } catch (...) {
        return {code, "out of memory"};
    }
}

template <class Text>
Status runtime_failure(Text&& text) noexcept {
    return failure(Code::kRuntime, std::forward<Text>(text));
}

// Runs `body` (returns a Status). std::bad_alloc becomes "<where> must have memory for
// <memory()>, got std::bad_alloc"; any other exception "<where> must succeed, got …".
template <class Memory, class Body>
Status guard(const char* where, Memory&& memory, Body&& body) noexcept {
    try {
        return body();
    } catch (const std::bad_alloc&) {
        return runtime_failure([&] {
            return std::string(where) + " must have memory for " + memory() +
                   ", got std::bad_alloc";
        });
    } catch (const std::exception& e) {
        return runtime_failure(
            [&] { return std::string(where) + " must succeed, got an exception: " + e.what(); });
    } catch (...) {
        return runtime_failure([&] {
            return std::string(where) + " must succeed, got an exception of a non-standard type";
        });
    }
}

// What the second phase of each operation allocates (its per-call scratch), for the message.
std::string scratch_text(const core::DispatchOp& op);
std::string scratch_text(const core::CombineOp& op);

}  // namespace moedist::api
