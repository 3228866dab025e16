// `moedist run`: dispatch → expert → combine on thread ranks (or processes, or MPI processes),
// every output checked against the naive reference; prints timings, bytes and a summary of the
// expert load (`--load`: every expert), or all of it as JSON (`--json[=FILE]`).
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "cli_common.hpp"
#include "harness/job.hpp"
#include "v2_options.hpp"

namespace moedist::cli {

struct RunOptions {
    harness::JobSpec spec;  // ranks, tp, shared ranks, tokens, hidden, topk, seed
    int experts = -1;       // -1: 64, or ranks - shared-ranks with --tp 2
    int steps = 5;
    std::string quant = "none";
    std::string dtype = "bf16";
    std::string routing = "uniform";
    std::string backend = "threads";
    std::vector<std::string> hosts;  // --backend ucx: every host's address
    int host_index = -1;             // --backend ucx: this host's position in --hosts
    int comm_quant = 0;
    int ranks_per_node = 0;
    bool no_check = false;
    bool smooth = false;
    bool zero_padding = false;
    bool load = false;
    V2Options v2;
    JsonTarget json;
    CLI::App* app = nullptr;
};

// --routing: uniform, zipf, zipf:ALPHA, hot or duplicates; "" or what is wrong with `text`.
std::string parse_routing(const std::string& text, harness::JobSpec* spec);
// What makes a job impossible, naming the values it judged; "" when it can run.
std::string shape_problem(const harness::JobSpec& spec);
// The verdict of the profile MOEDIST_SOC names on the job's shapes; "" when it accepts.
std::string profile_problem(const harness::JobSpec& spec,
                            const std::string& quant,
                            const std::string& dtype,
                            const V2Options& v2 = {});

CLI::App* add_run_command(CLI::App& app, RunOptions* options);
// Validates, then runs (under MPI_Init with --backend mpi); returns the exit code.
int run_command(RunOptions& options, int argc, char** argv);

}  // namespace moedist::cli
