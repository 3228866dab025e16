// moedist — the command line. `moedist plan`: plan_command.hpp. `moedist run` runs dispatch →
// expert → combine on thread ranks, checks every output against the naive reference and prints
// timings and the expert load.
#include <fmt/core.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench_command.hpp"
#if defined(MOEDIST_HAVE_MPI)
#include "run_mpi.hpp"
#endif
#include "harness/job.hpp"
#include "plan_command.hpp"
#include "quant_choices.hpp"

namespace {

using moedist::harness::JobSpec;
using moedist::harness::Routing;

bool parse_routing(const std::string& text, JobSpec* spec) {
    if (text == "uniform") {
        spec->routing = Routing::kUniform;
    } else if (text == "hot") {
        spec->routing = Routing::kHot;
    } else if (text == "duplicates") {
        spec->routing = Routing::kDuplicates;
    } else if (text.rfind("zipf", 0) == 0) {
        spec->routing = Routing::kZipf;
        if (text.size() > 4) {
            if (text[4] != ':') return false;
            try {
                std::size_t used = 0;
                spec->zipf_alpha = std::stod(text.substr(5), &used);
                if (used != text.size() - 5 || spec->zipf_alpha <= 0) return false;
            } catch (...) {
                return false;
            }
        }
    } else {
        return false;
    }
    return true;
}

void apply_quant(const std::string& name, JobSpec* spec) {
    const auto& c = moedist::cli::quant_choice(name);
    spec->quant_mode = c.mode;
    spec->target = c.target;
    spec->pre_quantized = c.pre_quantized;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

// With --backend mpi every MPI process runs one rank; only rank 0 prints.
bool quiet_rank() {
#if defined(MOEDIST_HAVE_MPI)
    return moedist::cli::mpi_rank() != 0;
#else
    return false;
#endif
}

int run_command(JobSpec spec, int steps, bool check, bool mpi) {
    if (quiet_rank()) {
        if (std::freopen("/dev/null", "w", stdout) == nullptr) return 1;  // the report is rank 0's
    }
    if (std::string why = moedist::harness::spec_error(spec); !why.empty()) {
        fmt::print(stderr, "moedist run: {}\n", why);
        return 2;
    }
    const bool bar = isatty(STDERR_FILENO) && steps >= 20;
    fmt::print(
        "moedist run: {} ranks {} (tp {}, shared {}), experts {}, tokens {}, hidden {}, topk {}, "
        "{} {}, routing {}, steps {}\n",
        mpi ? "mpi,"
            : (spec.backend == moedist::harness::Backend::kProcesses ? "processes," : "threads,"),
        spec.ep_world_size,
        spec.tp_size,
        spec.shared_rank_num,
        spec.moe_expert_num,
        spec.tokens,
        spec.hidden,
        spec.top_k,
        moedist::dtype_name(spec.dtype),
        spec.quant_mode == 0 && !spec.pre_quantized
            ? std::string("no quant")
            : fmt::format("quant mode {} to {}{}",
                          spec.quant_mode,
                          moedist::dtype_name(spec.target),
                          spec.pre_quantized ? " (pre-quantized x)" : ""),
        static_cast<int>(spec.routing) == 1    ? fmt::format("zipf:{}", spec.zipf_alpha)
        : spec.routing == Routing::kHot        ? std::string("hot")
        : spec.routing == Routing::kDuplicates ? std::string("duplicates")
                                               : std::string("uniform"),
        steps);
    auto progress = [&](int step) {
        if (!bar) return;
        const int width = 40;
        const int filled = (step + 1) * width / steps;
        fmt::print(stderr,
                   "\r[{}{}] {}/{}",
                   std::string(static_cast<std::size_t>(filled), '#'),
                   std::string(static_cast<std::size_t>(width - filled), ' '),
                   step + 1,
                   steps);
        if (step + 1 == steps) fmt::print(stderr, "\n");
    };
#if defined(MOEDIST_HAVE_MPI)
    moedist::harness::MpiTraffic traffic;
    const auto report = mpi ? moedist::cli::run_mpi(spec, steps, check, &traffic)
                            : moedist::harness::run_job(spec, steps, check, progress);
    if (mpi && traffic.nodes > 1) {
        fmt::print(
            "across nodes ({} nodes, MOEDIST_RANKS_PER_NODE): dispatch {} rows, {:.2f} MB sent "
            "(hierarchical, each token once per node) vs {} rows, {:.2f} MB for a flat "
            "all-to-all; combine {} rows, {:.2f} MB\n",
            traffic.nodes,
            traffic.dispatch_rows,
            static_cast<double>(traffic.dispatch_bytes) / 1e6,
            traffic.dispatch_flat_rows,
            static_cast<double>(traffic.dispatch_flat_rows * traffic.row_bytes) / 1e6,
            traffic.combine_rows,
            static_cast<double>(traffic.combine_bytes) / 1e6);
    }
#else
    (void)mpi;
    const auto report = moedist::harness::run_job(spec, steps, check, progress);
#endif
    if (report.steps.empty()) {
        fmt::print("check: FAILED: {}\n", report.first_mismatch);
        return 1;
    }
    std::vector<double> dispatch_ms, combine_ms;
    for (const auto& s : report.steps) {
        dispatch_ms.push_back(s.dispatch_ms);
        combine_ms.push_back(s.combine_ms);
    }
    const double d = median(dispatch_ms), c = median(combine_ms);
    fmt::print(
        "dispatch: median {:.3f} ms, min {:.3f} ms (wall, all ranks), {:.2f} MB written, {:.2f} "
        "GB/s\n",
        d,
        *std::min_element(dispatch_ms.begin(), dispatch_ms.end()),
        static_cast<double>(report.dispatch_bytes) / 1e6,
        static_cast<double>(report.dispatch_bytes) / (d * 1e6));
    fmt::print(
        "combine:  median {:.3f} ms, min {:.3f} ms (wall, all ranks), {:.2f} MB read, {:.2f} "
        "GB/s\n",
        c,
        *std::min_element(combine_ms.begin(), combine_ms.end()),
        static_cast<double>(report.combine_bytes) / 1e6,
        static_cast<double>(report.combine_bytes) / (c * 1e6));
    fmt::print("expert load (rows received, EP group 0):\n");
    const auto& rows = report.rows_per_expert;
    const int64_t max_rows = rows.empty() ? 0 : *std::max_element(rows.begin(), rows.end());
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const bool shared = static_cast<int>(i) >= spec.moe_expert_num;
        const int bar_len = max_rows > 0 ? static_cast<int>(rows[i] * 30 / max_rows) : 0;
        fmt::print("  {:>9} {:>4} {:>7}  {}\n",
                   shared ? "shared@" : "expert",
                   shared ? static_cast<int>(i) - spec.moe_expert_num : static_cast<int>(i),
                   rows[i],
                   std::string(static_cast<std::size_t>(bar_len), '*'));
    }
    if (!check) {
        fmt::print("check: skipped\n");
        return 0;
    }
    if (!report.ok) {
        fmt::print("check: FAILED: {}\n", report.first_mismatch);
        return 1;
    }
    fmt::print("check: OK — every output of every rank equals the reference bit for bit\n");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"moedist: MoE expert-parallel dispatch and combine on CPUs"};
    app.require_subcommand(1);
    auto* run = app.add_subcommand(
        "run", "dispatch -> expert -> combine on thread ranks, checked against the reference");
    JobSpec spec;
    spec.ep_world_size = 8;
    spec.tokens = 32;
    spec.hidden = 7168;
    spec.top_k = 8;
    int experts = -1;
    int steps = 5;
    std::string quant = "none", dtype = "bf16", routing = "uniform";
    bool no_check = false;
    bool smooth = false;
    int comm_quant = 0;
    run->add_option("--ranks", spec.ep_world_size, "EP ranks W (default 8)")
        ->check(CLI::Range(1, 1024));
    run->add_option("--tp", spec.tp_size, "TP size: 1 or 2")->check(CLI::IsMember({1, 2}));
    run->add_option("--shared-ranks", spec.shared_rank_num, "shared-expert ranks S")
        ->check(CLI::Range(0, 1023));
    run->add_option("--tokens", spec.tokens, "tokens per rank BS (default 32)")
        ->check(CLI::Range(0, 1 << 20));
    run->add_option("--hidden", spec.hidden, "hidden size H (default 7168)")
        ->check(CLI::Range(1, 1 << 20));
    run->add_option("--topk", spec.top_k, "experts per token K (default 8)")
        ->check(CLI::Range(1, 1024));
    run->add_option(
           "--experts", experts, "MoE experts E (default 64; with --tp 2: ranks - shared-ranks)")
        ->check(CLI::Range(1, 1 << 16));
    run->add_option("--quant",
                    quant,
                    "none|int8|static-int8|static-hif8|fp8-e4m3|fp8-e5m2|group-e4m3|group-e5m2|"
                    "mx-e4m3|mx-e5m2|pre-e4m3|pre-e5m2|pre-hif8")
        ->check(CLI::IsMember(moedist::cli::quant_names()));
    run->add_option("--dtype", dtype, "bf16|fp16")->check(CLI::IsMember({"bf16", "fp16"}));
    run->add_option("--routing", routing, "uniform|zipf[:alpha]|hot|duplicates");
    run->add_option("--steps", steps, "steps to run (default 5)")->check(CLI::Range(1, 1000000));
    run->add_option("--seed", spec.seed, "input seed");
    run->add_flag("--smooth", smooth, "per-token/per-group modes: pass smooth scales");
    run->add_option("--comm-quant", comm_quant, "combine commQuantMode: 0 or 2")
        ->check(CLI::IsMember({0, 2}));
    run->add_flag("--no-check", no_check, "skip the reference check (timing only)");
    std::string backend = "threads";
    run->add_option("--backend",
                    backend,
                    "threads (default), processes (forks one process per rank) or mpi (under "
                    "mpirun -np W*T: one rank per MPI process)")
        ->check(CLI::IsMember({"threads", "processes", "mpi"}));
    run->add_option_function<int>(
           "--ranks-per-node",
           [](const int& n) { ::setenv("MOEDIST_RANKS_PER_NODE", std::to_string(n).c_str(), 1); },
           "mpi backend: simulated nodes of n consecutive ranks (sets MOEDIST_RANKS_PER_NODE)")
        ->check(CLI::Range(1, 65536));
    moedist::cli::PlanOptions plan_options;
    auto* plan = moedist::cli::add_plan_command(app, &plan_options);
    moedist::cli::BenchOptions bench_options;
    auto* bench = moedist::cli::add_bench_command(app, &bench_options);
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        fmt::print(stderr,
                   "moedist: {} (see moedist{} --help)\n",
                   e.what(),
                   run->parsed() ? " run"
                                 : (plan->parsed() ? " plan" : (bench->parsed() ? " bench" : "")));
        return 2;
    }
    if (plan->parsed()) return moedist::cli::plan_command(plan_options);
    if (bench->parsed()) {
#if defined(MOEDIST_HAVE_MPI)
        if (bench_options.backend == "mpi") {
            return moedist::cli::with_mpi(
                argc, argv, [&] { return moedist::cli::bench_command(bench_options); });
        }
#endif
        return moedist::cli::bench_command(bench_options);
    }
    if (!parse_routing(routing, &spec)) {
        fmt::print(
            stderr,
            "moedist run: --routing must be uniform, zipf[:alpha], hot or duplicates, got '{}'\n",
            routing);
        return 2;
    }
    spec.moe_expert_num =
        experts > 0 ? experts
                    : (spec.tp_size == 2 ? spec.ep_world_size - spec.shared_rank_num : 64);
    apply_quant(quant, &spec);
    spec.smooth_scales = smooth;
    spec.comm_quant_mode = comm_quant;
    spec.dtype = dtype == "fp16" ? moedist::DType::kFloat16 : moedist::DType::kBFloat16;
    spec.backend = backend == "processes" ? moedist::harness::Backend::kProcesses
                                          : moedist::harness::Backend::kThreads;
    if (backend == "mpi") {
#if defined(MOEDIST_HAVE_MPI)
        return moedist::cli::with_mpi(
            argc, argv, [&] { return run_command(spec, steps, !no_check, true); });
#else
        fmt::print(stderr, "moedist run: --backend mpi needs a build with MPI (OpenMPI)\n");
        return 2;
#endif
    }
    return run_command(spec, steps, !no_check, false);
}
