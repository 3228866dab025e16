// moedist.Error: every failure of the module, with the aclnn code and the one-line message.
#pragma once

#include <pybind11/pybind11.h>

#include <string>

#include "moedist/status.hpp"

namespace moedist::python {

struct ModuleError {
    Code code;
    std::string message;
};

[[noreturn]] inline void throw_error(Code code, const std::string& message) {
    throw ModuleError{code, message};
}
inline void throw_if(const Status& s) {
    if (!s.ok()) throw ModuleError{s.code(), s.message()};
}

// `message` with the aclnn parameter names (epRankId, globalBs, ...) spelled as Python's keywords
// (ep_rank_id, global_bs, ...).
std::string python_names(const std::string& message);

// Creates moedist.Error (attributes code, message) and translates ModuleError into it.
void register_errors(pybind11::module_& m);

}  // namespace moedist::python
