#include "errors.hpp"

namespace py = pybind11;

namespace moedist::python {

void register_errors(py::module_& m) {
    // moedist.Error(code, message): str() is the message; .code the aclnn code (SPEC §7).
    static py::exception<ModuleError> error(m, "Error", PyExc_RuntimeError);
    error.doc() =
        "A moedist failure: .code is the aclnn error code (161001, 161002, 361001, 561002), "
        ".message SPEC's one-line message.";
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const ModuleError& e) {
            py::object instance = py::reinterpret_borrow<py::object>(error)(e.message);
            instance.attr("code") = static_cast<int>(e.code);
            instance.attr("message") = py::str(e.message);
            PyErr_SetObject(error.ptr(), instance.ptr());
        }
    });
}

}  // namespace moedist::python
