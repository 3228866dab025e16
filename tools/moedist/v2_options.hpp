// The V2 family's options of `moedist run`, `plan` and `bench` (docs/contract.md §10), declared
// once: --api, --shared-experts, --mask, the special experts, --unweighted, --shared-expert-x,
// --add-rms-norm, --performance-info and --comm-alg.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "harness/job.hpp"
#include "moedist/config.hpp"

namespace moedist::cli {

struct V2Options {
    std::string api = "v1";      // v1 | v2
    int shared_experts = 1;      // N (V2, with --shared-ranks > 0)
    std::string mask = "none";   // none | prefix[:F] | random[:F], F the inactive fraction
    int zero_experts = 0;
    int copy_experts = 0;
    int const_experts = 0;
    std::string const_alpha = "scalar";  // scalar (Q,) | vector (Q, H)
    bool unweighted = false;
    bool shared_expert_x = false;
    bool add_rms_norm = false;
    bool performance_info = false;
    std::string comm_alg;
    CLI::App* app = nullptr;
};

// Adds the options to `app`; `lists`: all but --api and --mask, which the bench declares as
// lists of its own.
void add_v2_options(CLI::App* app, V2Options* options, bool lists);
// The V2 options other than --api and --mask.
void add_v2_details(CLI::App* app, V2Options* options);

// Whether any V2-only option was given (an error without --api v2).
bool v2_only_given(const V2Options& options);

// Applies the options (with this point's api and mask) to a job; "" or what is wrong, naming
// the option.
std::string apply_v2_options(const V2Options& options,
                             const std::string& api,
                             const std::string& mask,
                             harness::JobSpec* spec);

// Applies them to a config (plan): api, N, special experts, commAlg.
void apply_v2_options(const V2Options& options, MoeConfig* config);

// "none", "prefix", "random" with an optional ":F", F the inactive fraction in [0, 1]: kind 0/1/2
// and F (-1 when not given: per rank at random); "" or the error.
std::string parse_mask(const std::string& text, int* kind, double* inactive);

}  // namespace moedist::cli
