// The whole-job suite every backend runs: world sizes, shared ranks, TP, every quantization
// mode, skewed routing, strided x, uneven BS, zero padding, the C API.
#pragma once

#include <vector>

#include "harness/job.hpp"

namespace moedist::test_specs {

std::vector<moedist::harness::JobSpec> valid_jobs();
// The V2 family: masks, special experts, shared experts by the replica rule, AddRmsNorm, ...
std::vector<moedist::harness::JobSpec> v2_jobs();

}  // namespace moedist::test_specs
