// What every call of moedist._moedist shares (module.cpp, deep_ep.cpp): tensor arguments held
// for the length of a call, Ctrl-C while it waits, and a split call between its halves.
#pragma once

#include <pybind11/pybind11.h>

#include <optional>
#include <string>
#include <vector>

#include "errors.hpp"
#include "moedist/moedist.hpp"
#include "tensors.hpp"
#include "transport/transport.hpp"

namespace moedist::python {

namespace py = pybind11;

// A tensor argument: a tensor, or a (tensor, "dtype name") pair reinterpreting its elements.
inline HeldView arg_view(const py::handle& arg, const char* name, bool writable) {
    if (py::isinstance<py::tuple>(arg)) {
        auto pair = py::reinterpret_borrow<py::tuple>(arg);
        if (pair.size() != 2 || !py::isinstance<py::str>(pair[1]))
            throw_error(Code::kInvalidParam,
                        std::string(name) + " must be a tensor or a (tensor, dtype name) pair");
        return to_view(pair[0], name, pair[1].cast<std::string>(), writable);
    }
    return to_view(arg, name, std::nullopt, writable);
}

// The tensors of one call: their views, what keeps them alive, and (after the call) the check
// that no other thread moved their memory meanwhile.
struct Holder {
    std::vector<HeldView> held;
    std::vector<const char*> names;
    TensorView input(const py::handle& arg, const char* name) { return take(arg, name, false); }
    TensorView output(const py::handle& arg, const char* name) { return take(arg, name, true); }
    std::optional<TensorView> maybe_input(const py::handle& arg, const char* name) {
        if (arg.is_none()) return std::nullopt;
        return input(arg, name);
    }
    std::optional<TensorView> maybe_output(const py::handle& arg, const char* name) {
        if (arg.is_none()) return std::nullopt;
        return output(arg, name);
    }
    void check_unmoved() const {
        for (std::size_t i = 0; i < held.size(); ++i) python::check_unmoved(held[i], names[i]);
    }

private:
    TensorView take(const py::handle& arg, const char* name, bool writable) {
        held.push_back(arg_view(arg, name, writable));
        names.push_back(name);
        return held.back().view;
    }
};

// Ctrl-C while a call waits for its peers: the wait checks for a pending signal every few
// milliseconds (transport::InterruptCheck); a KeyboardInterrupt stops it, the group is broken
// with that reason, and the interrupt is raised once the call has returned.
class SignalWatch {
public:
    SignalWatch()
        : previous_(transport::set_interrupt_check(
              {&SignalWatch::pending, this, "KeyboardInterrupt (a signal reached Python)"})) {}
    ~SignalWatch() {
        transport::set_interrupt_check(previous_);
        if (type_ != nullptr) PyErr_Restore(type_, value_, traceback_);  // not raised: dropped
    }
    SignalWatch(const SignalWatch&) = delete;
    SignalWatch& operator=(const SignalWatch&) = delete;

    // With the GIL: raises the signal's exception when one stopped the call.
    void raise_if_fired() {
        if (type_ == nullptr) return;
        PyErr_Restore(type_, value_, traceback_);
        type_ = value_ = traceback_ = nullptr;
        throw py::error_already_set();
    }

private:
    static bool pending(void* context) {
        auto* self = static_cast<SignalWatch*>(context);
        if (self->type_ != nullptr) return true;
        PyGILState_STATE gil = PyGILState_Ensure();
        if (PyErr_CheckSignals() != 0) PyErr_Fetch(&self->type_, &self->value_, &self->traceback_);
        PyGILState_Release(gil);
        return self->type_ != nullptr;
    }

    transport::InterruptCheck previous_;
    PyObject* type_ = nullptr;
    PyObject* value_ = nullptr;
    PyObject* traceback_ = nullptr;
};

// Runs `call` without the GIL, interruptible by Ctrl-C; then the tensors' check and the status.
template <class Call>
void run_call(const Holder& h, Call call) {
    SignalWatch watch;
    Status s;
    {
        py::gil_scoped_release release;
        s = call();
    }
    watch.raise_if_fired();
    h.check_unmoved();
    throw_if(s);
}

// A split call between its halves: the tensors it uses stay referenced until it completes.
struct Pending {
    Holder held;
    PendingCall call;
    std::string what;
    Pending() = default;
    Pending(const Pending&) = delete;
    Pending& operator=(const Pending&) = delete;
    ~Pending() {
        if (call.pending()) {  // the group's call order must not break: complete it
            py::gil_scoped_release release;
            call = PendingCall();
        }
    }
    void wait() {
        run_call(held, [&] { return call.wait(); });
    }
    bool pending() const { return call.pending(); }
};

}  // namespace moedist::python
