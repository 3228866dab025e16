// moedist.deep_ep's low-latency calls in C++ (deep_ep.cpp): the class _LowLatency.
#pragma once

#include <pybind11/pybind11.h>

namespace moedist::python {

void register_deep_ep(pybind11::module_& m);

}  // namespace moedist::python
