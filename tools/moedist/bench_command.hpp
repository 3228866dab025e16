// `moedist bench`: sweeps of ranks, BS, H, K, E, quant mode, routing, TP and shared ranks. Per
// point the medians and spread of dispatch, combine and dispatch+combine, and in the same run on
// the same ranks the floors (non-temporal write of the received bytes, streaming read of the
// bytes combine reads, memcpy of the received bytes, a bare two-round call) and, with
// `--baseline alltoallv`, a pack → MPI_Alltoallv → unpack dispatch and its reverse combine
// launched under mpirun. A table and its legend on the terminal (a progress bar with rate and
// ETA on a TTY), the goal verdicts with --goals, --json[=FILE], --csv and --plot FILE.png
// (matplotlib through /usr/bin/python3).
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_common.hpp"
#include "harness/job.hpp"
#include "v2_options.hpp"

namespace moedist::cli {

struct BenchOptions {
    std::vector<int> ranks{8};
    std::vector<int64_t> tokens{1, 8, 32, 128};
    std::vector<int> hidden{7168};
    std::vector<int> top_k{8};
    std::vector<int> experts{256};
    std::vector<std::string> quant{"none"};
    std::vector<std::string> routing{"uniform"};
    std::vector<int> tp{1};
    std::vector<int> shared_ranks{0};
    std::vector<std::string> apis{"v1"};     // --api (list)
    std::vector<std::string> masks{"none"};  // --mask (list, V2)
    V2Options v2;                            // the other V2 options, for every V2 point
    std::string dtype = "bf16";
    std::string backend = "threads";
    std::vector<std::string> hosts;  // --backend ucx: every host's address
    int host_index = -1;             // --backend ucx: this host's position in --hosts
    std::string baseline = "auto";   // auto (alltoallv when mpirun is found), alltoallv, none
    int reps = 20;
    int warmup = 3;
    uint64_t seed = 1;
    int ranks_per_node = 0;
    bool goals = false;
    bool skip_invalid = false;
    bool overlap = false;    // --overlap: a two-micro-batch layer, sequential vs overlapped
    int expert_passes = 64;  // --expert-passes: the layer's expert compute per received element
    JsonTarget json;
    std::string csv_path;
    std::string plot_path;
    CLI::App* app = nullptr;
};

CLI::App* add_bench_command(CLI::App& app, BenchOptions* options);
int bench_command(const BenchOptions& options);
// --overlap (bench_overlap.cpp).
int overlap_command(const BenchOptions& options);

// --- pieces of the bench, in their own files ---

// One point's parameters.
struct BenchPoint {
    int ranks = 8;
    int64_t tokens = 128;
    int hidden = 7168;
    int top_k = 8;
    int experts = 256;
    std::string quant = "none";
    std::string routing = "uniform";
    int tp = 1;
    int shared_ranks = 0;
    std::string api = "v1";
    std::string mask = "none";
    bool operator==(const BenchPoint&) const = default;
};

// Median, 10th and 90th percentile and minimum of a series (milliseconds).
struct Spread {
    double median = 0, p10 = 0, p90 = 0, min = 0;
    static Spread of(std::vector<double> values);
};

struct BenchResult {
    BenchPoint point;
    std::string error;  // non-empty: the point could not run
    Spread dispatch, combine, total;
    Spread write_floor, read_floor, memcpy_floor, barrier;
    bool has_baseline = false;
    std::string baseline_error;
    Spread baseline_dispatch, baseline_combine;
    int64_t received_bytes = 0;  // all ranks, per dispatch
    int64_t combine_bytes = 0;   // all ranks, per combine
};

// The harness job of a point (timing only: outputs not poisoned).
harness::JobSpec bench_spec(const BenchOptions& options, const BenchPoint& point);

// --- bench_report.cpp: what the bench prints and writes ---

// "W8 BS128 H7168 K8 E256 none uniform".
std::string describe(const BenchPoint& point);
double ratio(double a, double b);
// The performance goals judged on the points the sweep has (--goals).
nlohmann::json goals_json(const std::vector<BenchResult>& all);
// The whole run: options, machine, plot title, points and, with --goals, the goals.
nlohmann::json bench_json(const BenchOptions& options,
                          const std::vector<BenchResult>& all,
                          const nlohmann::json& goals);
void print_table(const BenchOptions& options,
                 const std::vector<BenchResult>& all,
                 const nlohmann::json& goals);
void write_csv(const std::string& path, const std::vector<BenchResult>& all);

#if defined(MOEDIST_HAVE_MPI)
// Under mpirun (--backend mpi): the point on the mpi backend and, with `baseline`, the
// MPI_Alltoallv baseline in the same processes. Collective; every rank gets the result.
BenchResult measure_mpi(const BenchOptions& options, const BenchPoint& point, bool baseline);
int mpi_rank();
#endif

// Runs `moedist-alltoallv-baseline` under mpirun for `point`; false with *error when it cannot.
bool run_alltoallv_baseline(const BenchOptions& options,
                            const BenchPoint& point,
                            Spread* dispatch,
                            Spread* combine,
                            std::string* error);
// True when the baseline can run here (mpirun and the baseline executable exist).
bool alltoallv_baseline_available(std::string* why);

// Writes `png_path` from the JSON at `json_path` with matplotlib; false with *error otherwise.
bool plot_bench(const std::string& json_path, const std::string& png_path, std::string* error);

}  // namespace moedist::cli
