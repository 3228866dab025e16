// `moedist plan`: validates a configuration for each product profile on shapes alone and prints
// A, every tensor, the workspace, the HCCL_BUFFSIZE each profile needs and the bytes a rank sends
// and receives per step under uniform routing. `moedist plan --rules` prints the profile rules.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "cli_common.hpp"
#include "moedist/profile.hpp"
#include "v2_options.hpp"

namespace moedist::cli {

struct PlanOptions {
    std::string soc = "all";  // generic|A2|A3|all
    int64_t ranks = 8;
    int64_t tp = 0;
    int64_t shared_ranks = 0;
    int64_t experts = 64;
    int64_t shared_expert_num = -1;  // default: each profile's own (shared_expert_num_for)
    int64_t tokens = 32;
    int64_t global_bs = 0;
    int64_t hidden = 7168;
    int64_t top_k = 8;
    std::string quant = "none";
    std::string dtype = "bf16";
    int64_t comm_quant = 0;
    int64_t hccl_buffsize_mb = -2;  // -2: HCCL_BUFFSIZE from the environment (default 200)
    bool intra_pcie = false;
    bool rules = false;
    V2Options v2;       // --api v2 and its options
    int mask_ndim = 0;  // V2 xActiveMask: 0 none, 1 (BS,), 2 (BS, K)
    JsonTarget json;
    CLI::App* app = nullptr;
};

CLI::App* add_plan_command(CLI::App& app, PlanOptions* options);
int plan_command(const PlanOptions& options);

// sharedExpertNum: --shared-expert-num, else the profile's natural value: A2 0 (it supports
// none), A3 1 (its only value; torch_npu's default), generic 1 with shared ranks, else 0.
int64_t shared_expert_num_for(const PlanOptions& options, Soc soc);

// The first phases of a shared-expert rank and a MoE rank on shapes alone under `soc`: the
// first failing rule, or accepted.
struct ProfileVerdict {
    bool accepted = true;
    std::string operation, role, message;
    int32_t code = 0;
};
ProfileVerdict judge_profile(const PlanOptions& options, Soc soc);

}  // namespace moedist::cli
