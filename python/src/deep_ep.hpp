// moedist.deep_ep's low-latency bookkeeping in C++ (deep_ep.cpp): _ll_ids and _ll_tables.
#pragma once

#include <pybind11/pybind11.h>

namespace moedist::python {

void register_deep_ep(pybind11::module_& m);

}  // namespace moedist::python
