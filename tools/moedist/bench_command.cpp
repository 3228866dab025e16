#include "bench_command.hpp"

#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "harness/job.hpp"
#include "quant_choices.hpp"
#include "run_command.hpp"
#if defined(MOEDIST_HAVE_MPI)
#include "run_mpi.hpp"
#endif

namespace moedist::cli {

using harness::Floor;
using harness::Job;
using harness::JobSpec;
using nlohmann::json;

JobSpec bench_spec(const BenchOptions& o, const BenchPoint& p) {
    JobSpec spec;
    spec.ep_world_size = p.ranks;
    spec.tokens = p.tokens;
    spec.hidden = p.hidden;
    spec.top_k = p.top_k;
    spec.moe_expert_num = p.experts;
    spec.tp_size = p.tp;
    spec.shared_rank_num = p.shared_ranks;
    spec.dtype = o.dtype == "fp16" ? DType::kFloat16 : DType::kBFloat16;
    const QuantChoice& q = quant_choice(p.quant);
    spec.quant_mode = static_cast<int>(q.mode);
    spec.target = q.target;
    spec.pre_quantized = q.pre_quantized;
    spec.static_scales = 2;
    spec.seed = o.seed;
    spec.checked = false;
    spec.backend = o.backend == "processes" ? harness::Backend::kProcesses
                   : o.backend == "ucx"     ? harness::Backend::kHosts
                                            : harness::Backend::kThreads;
    spec.hosts = o.hosts;
    spec.host_index = o.host_index;
    (void)parse_routing(p.routing, &spec);               // checked before the sweep (point_problem)
    (void)apply_v2_options(o.v2, p.api, p.mask, &spec);  // likewise
    return spec;
}

namespace {

const std::string kBenchCmd = "bench";

std::vector<BenchPoint> sweep(const BenchOptions& o) {
    std::vector<BenchPoint> points;
    for (int w : o.ranks)
        for (int tp : o.tp)
            for (int s : o.shared_ranks)
                for (int e : o.experts)
                    for (int h : o.hidden)
                        for (int k : o.top_k)
                            for (const auto& r : o.routing)
                                for (const auto& q : o.quant)
                                    for (const auto& api : o.apis)
                                        for (const auto& m : o.masks)
                                            for (int64_t bs : o.tokens) {
                                                if (api == "v1" && m != "none") continue;
                                                points.push_back(
                                                    {w, bs, h, k, e, q, r, tp, s, api, m});
                                            }
    return points;
}

// On a TTY (stderr): a bar, points done, the rate and the time left.
class Progress {
public:
    Progress(int points, int ticks_per_point)
        : points_(points),
          per_point_(std::max(ticks_per_point, 1)),
          tty_(points > 0 && isatty(STDERR_FILENO) != 0),
          start_(std::chrono::steady_clock::now()) {}
    void tick(const std::string& what) {
        ++done_;
        if (!tty_) return;
        const int total = points_ * per_point_, width = 24;
        const int filled = done_ * width / std::max(total, 1);
        const double elapsed =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        const double points_done = static_cast<double>(done_) / per_point_;
        const int whole = done_ / per_point_;
        const double eta = elapsed / done_ * (total - done_);
        fmt::print(stderr,
                   "\r[{}{}] {}/{} points, {}, ETA {} {:<34}",
                   std::string(static_cast<std::size_t>(filled), '#'),
                   std::string(static_cast<std::size_t>(width - filled), ' '),
                   whole,
                   points_,
                   rate_text(points_done, elapsed, "point"),
                   duration_text(eta),
                   what.substr(0, 34));
        if (done_ == total) fmt::print(stderr, "\n");
    }

private:
    int points_, per_point_, done_ = 0;
    bool tty_;
    std::chrono::steady_clock::time_point start_;
};

BenchResult measure(const BenchOptions& o, const BenchPoint& p, Progress* progress) {
    BenchResult result;
    result.point = p;
    Job job(bench_spec(o, p));
    std::vector<double> d, c, t, wf, rf, mf, bf;
    for (int i = 0; i < o.warmup + o.reps; ++i) {
        const harness::PhaseTimes times = job.step();
        const double w = job.floor(Floor::kWrite);
        const double r = job.floor(Floor::kRead);
        const double m = job.floor(Floor::kMemcpy);
        const double b = job.floor(Floor::kBarrier);
        progress->tick(describe(p));
        if (!job.status().ok()) {
            result.error = job.status().message();
            return result;
        }
        if (i < o.warmup) continue;
        d.push_back(times.dispatch_ms);
        c.push_back(times.combine_ms);
        t.push_back(times.dispatch_ms + times.combine_ms);
        wf.push_back(w);
        rf.push_back(r);
        mf.push_back(m);
        bf.push_back(b);
    }
    result.dispatch = Spread::of(d);
    result.combine = Spread::of(c);
    result.total = Spread::of(t);
    result.write_floor = Spread::of(wf);
    result.read_floor = Spread::of(rf);
    result.memcpy_floor = Spread::of(mf);
    result.barrier = Spread::of(bf);
    const harness::JobReport report = job.check(false);
    result.received_bytes = report.dispatch_bytes;
    result.combine_bytes = report.combine_bytes;
    return result;
}

// Why a point cannot run, naming its values; "" when it can.
std::string point_problem(const BenchOptions& o, const BenchPoint& p, int mpi_world) {
    JobSpec spec;
    if (std::string why = parse_routing(p.routing, &spec); !why.empty()) return why;
    if (std::string why = apply_v2_options(o.v2, p.api, p.mask, &spec); !why.empty()) return why;
    spec = bench_spec(o, p);
    if (std::string why = shape_problem(spec); !why.empty()) return why;
    if (std::string why = profile_problem(spec, p.quant, o.dtype); !why.empty()) return why;
    if (mpi_world > 0 && p.ranks * p.tp != mpi_world) {
        return fmt::format("mpirun -np must be --ranks {} x --tp {} = {}, got {}",
                           p.ranks,
                           p.tp,
                           p.ranks * p.tp,
                           mpi_world);
    }
    return {};
}

// Options that the chosen mode ignores, and what the bench derives on its own.
void explain(const BenchOptions& o, bool baseline, const std::string& why_not) {
    if (o.app->count("--ranks-per-node") > 0 && o.backend != "mpi") {
        warn(kBenchCmd,
             fmt::format("--ranks-per-node {} is ignored: it applies to --backend mpi only, got "
                         "--backend {}",
                         o.ranks_per_node,
                         o.backend));
    }
    if (o.baseline == "auto") {
        note(kBenchCmd,
             baseline
                 ? std::string("--baseline auto: the MPI_Alltoallv baseline runs (mpirun found)")
                 : "--baseline auto: no MPI_Alltoallv baseline, " + why_not);
    }
    const bool tp_or_shared =
        std::any_of(o.tp.begin(), o.tp.end(), [](int t) { return t != 1; }) ||
        std::any_of(o.shared_ranks.begin(), o.shared_ranks.end(), [](int s) { return s != 0; });
    if (baseline && tp_or_shared) {
        warn(kBenchCmd,
             "the MPI_Alltoallv baseline is not run at points with --tp 2 or --shared-ranks");
    }
    if (std::find(o.tokens.begin(), o.tokens.end(), int64_t{0}) != o.tokens.end()) {
        note(kBenchCmd,
             "--tokens 0: no rank has tokens at those points; the times are the calls' fixed cost");
    }
}

// Files the bench will write, and matplotlib for --plot: checked before any point runs.
std::string output_problem(const BenchOptions& o) {
    if (o.json.wanted() && !o.json.to_stdout()) {
        if (std::string why = unwritable(o.json.path); !why.empty())
            return "--json=" + o.json.path + ": " + why;
    }
    for (const std::string* path : {&o.csv_path, &o.plot_path}) {
        if (path->empty()) continue;
        if (std::string why = unwritable(*path); !why.empty()) return *path + ": " + why;
    }
    if (!o.plot_path.empty() &&
        std::system("/usr/bin/python3 -c 'import matplotlib' >/dev/null 2>&1") != 0) {
        return "--plot needs /usr/bin/python3 with matplotlib (python3-matplotlib, "
               "scripts/setup.sh), got none";
    }
    return {};
}

// Every point's problem, with --skip-invalid only said; else 2 before anything runs.
bool screen(const BenchOptions& o,
            const std::vector<BenchPoint>& points,
            int mpi_world,
            std::vector<std::string>* problems) {
    int bad = 0;
    for (const BenchPoint& p : points) {
        problems->push_back(point_problem(o, p, mpi_world));
        if (problems->back().empty()) continue;
        ++bad;
        if (o.skip_invalid) {
            note(kBenchCmd, "skipping " + describe(p) + ": " + problems->back());
        } else if (launcher_rank() == 0) {
            fmt::print(stderr, "moedist bench: {} cannot run: {}\n", describe(p), problems->back());
        }
    }
    if (bad > 0 && !o.skip_invalid && launcher_rank() == 0) {
        fmt::print(stderr,
                   "moedist bench: {} of {} points cannot run; nothing ran (--skip-invalid runs "
                   "the others)\n",
                   bad,
                   points.size());
    }
    return bad == 0 || o.skip_invalid;
}

int mpi_world_size_or_zero(bool mpi) {
#if defined(MOEDIST_HAVE_MPI)
    return mpi ? mpi_world_size() : 0;
#else
    (void)mpi;
    return 0;
#endif
}

std::vector<BenchResult> run_sweep(const BenchOptions& o,
                                   const std::vector<BenchPoint>& points,
                                   const std::vector<std::string>& problems,
                                   bool baseline,
                                   bool root) {
    int runnable = 0;
    for (const std::string& why : problems) runnable += why.empty() ? 1 : 0;
    Progress progress(root ? runnable : 0, o.warmup + o.reps);
    std::vector<BenchResult> results;
    for (std::size_t i = 0; i < points.size(); ++i) {
        const BenchPoint& p = points[i];
        if (!problems[i].empty()) {
            BenchResult skipped;
            skipped.point = p;
            skipped.error = "skipped: " + problems[i];
            results.push_back(skipped);
            continue;
        }
#if defined(MOEDIST_HAVE_MPI)
        if (o.backend == "mpi") {  // this mpirun's processes: moedist and the baseline
            results.push_back(measure_mpi(o, p, baseline));
            continue;
        }
#endif
        BenchResult r = measure(o, p, &progress);
        if (baseline && r.error.empty()) {
            if (p.tp != 1 || p.shared_ranks != 0) {
                r.baseline_error = "no baseline with TP or shared ranks";
            } else {
                r.has_baseline = run_alltoallv_baseline(
                    o, p, &r.baseline_dispatch, &r.baseline_combine, &r.baseline_error);
            }
        }
        results.push_back(std::move(r));
    }
    return results;
}

// JSON, CSV and the chart; false when one could not be written.
bool write_outputs(const BenchOptions& o,
                   const json& all,
                   const std::vector<BenchResult>& results) {
    if (!emit_json(o.json, all, kBenchCmd)) return false;
    if (!o.csv_path.empty()) {
        write_csv(o.csv_path, results);
        note(kBenchCmd, "wrote " + o.csv_path);
    }
    if (o.plot_path.empty()) return true;
    JsonTarget plot_json;
    plot_json.path = o.json.wanted() && !o.json.to_stdout() ? o.json.path : o.plot_path + ".json";
    if (plot_json.path != o.json.path) {
        std::ofstream(plot_json.path) << all.dump(2) << "\n";
        note(kBenchCmd, "wrote " + plot_json.path + " (the chart's data)");
    }
    std::string error;
    if (!plot_bench(plot_json.path, o.plot_path, &error)) {
        fmt::print(stderr, "moedist bench: --plot: {}\n", error);
        return false;
    }
    note(kBenchCmd, "wrote " + o.plot_path);
    return true;
}

}  // namespace

Spread Spread::of(std::vector<double> v) {
    Spread s;
    if (v.empty()) return s;
    std::sort(v.begin(), v.end());
    auto at = [&](double q) {
        return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5)];
    };
    s.median = v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
    s.p10 = at(0.1);
    s.p90 = at(0.9);
    s.min = v.front();
    return s;
}

CLI::App* add_bench_command(CLI::App& app, BenchOptions* o) {
    auto* bench = app.add_subcommand(
        "bench",
        "sweep shapes; dispatch and combine next to memory floors and an MPI_Alltoallv baseline");
    o->app = bench;
    bench->add_option("--ranks", o->ranks, "EP ranks W (list: 8,16,64)")->delimiter(',');
    bench->add_option("--tokens", o->tokens, "BS per rank (list)")->delimiter(',');
    bench->add_option("--hidden", o->hidden, "H (list)")->delimiter(',');
    bench->add_option("--topk", o->top_k, "K (list)")->delimiter(',');
    bench->add_option("--experts", o->experts, "E (list)")->delimiter(',');
    bench
        ->add_option(
            "--quant", o->quant, "quantization modes (list of `moedist run --quant` names)")
        ->delimiter(',')
        ->check(CLI::IsMember(quant_names()));
    bench->add_option("--routing", o->routing, "uniform|zipf[:alpha]|hot|duplicates (list)")
        ->delimiter(',');
    bench->add_option("--tp", o->tp, "TP size 1 or 2 (list)")->delimiter(',');
    bench->add_option("--shared-ranks", o->shared_ranks, "shared-expert ranks S (list)")
        ->delimiter(',');
    bench->add_option("--api", o->apis, "operator family: v1 and/or v2 (list)")
        ->delimiter(',')
        ->check(CLI::IsMember({"v1", "v2"}));
    bench
        ->add_option("--mask",
                     o->masks,
                     "V2 xActiveMask: none, prefix[:F], random[:F], F the inactive fraction (list)")
        ->delimiter(',');
    add_v2_options(bench, &o->v2, true);
    bench->add_option("--dtype", o->dtype, "bf16|fp16")->check(CLI::IsMember({"bf16", "fp16"}));
    bench
        ->add_option("--backend",
                     o->backend,
                     "threads, processes, mpi (under mpirun -np W: the baseline in the same "
                     "mpirun) or ucx (this host's ranks, joined with the other hosts' over UCX: "
                     "--hosts, --host-index; times are this host's ranks')")
        ->check(CLI::IsMember({"threads", "processes", "mpi", "ucx"}));
    bench
        ->add_option("--hosts",
                     o->hosts,
                     "--backend ucx: every host's address, in the same order on every host")
        ->delimiter(',');
    bench
        ->add_option(
            "--host-index", o->host_index, "--backend ucx: this host's position in --hosts")
        ->check(CLI::Range(0, 4095));
    bench
        ->add_option("--ranks-per-node",
                     o->ranks_per_node,
                     "mpi backend: simulated nodes of n consecutive ranks (sets "
                     "MOEDIST_RANKS_PER_NODE; default: unset, one node)")
        ->check(CLI::Range(1, 65536))
        ->default_str("");
    bench
        ->add_option(
            "--baseline", o->baseline, "auto (alltoallv when mpirun is found)|alltoallv|none")
        ->check(CLI::IsMember({"auto", "alltoallv", "none"}));
    bench->add_option("--reps", o->reps, "measured repetitions per point")
        ->check(CLI::Range(1, 100000));
    bench->add_option("--warmup", o->warmup, "warm-up repetitions per point")
        ->check(CLI::Range(0, 1000));
    bench->add_option("--seed", o->seed, "input seed");
    bench->add_flag(
        "--goals", o->goals, "judge the performance goals of docs/performance.md (met / MISSED)");
    bench->add_flag("--overlap",
                    o->overlap,
                    "time a MoE layer of two micro-batches, sequential against overlapped (split "
                    "calls: one micro-batch's experts while the other's rows travel)");
    bench
        ->add_option("--expert-passes",
                     o->expert_passes,
                     "--overlap: the experts' multiply-adds per received element")
        ->check(CLI::Range(0, 100000));
    bench->add_flag("--skip-invalid",
                    o->skip_invalid,
                    "skip the sweep's points that cannot run (default: exit 2 before running)");
    add_json_option(bench, &o->json, "the points, their floors and ratios");
    bench->add_option("--csv", o->csv_path, "write the results as CSV to this file");
    bench->add_option("--plot", o->plot_path, "write a PNG chart (time vs BS, log scale)");
    return bench;
}

int bench_command(const BenchOptions& o) {
    if (o.overlap) return overlap_command(o);
    const bool mpi = o.backend == "mpi";
#if !defined(MOEDIST_HAVE_MPI)
    if (mpi) {
        fmt::print(stderr, "moedist bench: --backend mpi needs a build with MPI (OpenMPI)\n");
        return kExitUnusable;
    }
#endif
    const int world = mpi_world_size_or_zero(mpi);
#if defined(MOEDIST_HAVE_MPI)
    const bool root = !mpi || mpi_rank() == 0;
#else
    const bool root = true;
#endif
    const std::vector<BenchPoint> points = sweep(o);
    std::vector<std::string> problems;
    if (!screen(o, points, world, &problems)) return kExitUnusable;
    if (std::string why = output_problem(o); !why.empty()) {
        fmt::print(stderr, "moedist bench: {}\n", why);
        return kExitUnusable;
    }
    if (o.backend == "ucx" && (o.hosts.size() < 2 || o.host_index < 0 ||
                               o.host_index >= static_cast<int>(o.hosts.size()))) {
        fmt::print(stderr,
                   "moedist bench: --backend ucx must be given --hosts ADDR,ADDR[,...] and "
                   "--host-index i, got {} hosts and index {}\n",
                   o.hosts.size(),
                   o.host_index);
        return kExitUnusable;
    }
    if (o.backend == "ucx" && o.baseline == "alltoallv") {
        fmt::print(stderr,
                   "moedist bench: --baseline alltoallv with --backend ucx: the baseline across "
                   "hosts runs under mpirun (moedist bench --backend mpi --baseline alltoallv on "
                   "the same hosts)\n");
        return kExitUnusable;
    }
    std::string why_not = "--backend ucx (the baseline across hosts runs under mpirun)";
    const bool available =
        o.baseline != "none" && o.backend != "ucx" && alltoallv_baseline_available(&why_not);
    if (o.baseline == "alltoallv" && !available) {
        fmt::print(stderr, "moedist bench: --baseline alltoallv: {}\n", why_not);
        return kExitUnusable;
    }
    if (mpi && o.ranks_per_node > 0)
        ::setenv("MOEDIST_RANKS_PER_NODE", std::to_string(o.ranks_per_node).c_str(), 1);
    explain(o, available, why_not);
    if (!root && std::freopen("/dev/null", "w", stdout) == nullptr) return kExitUnusable;
    const std::vector<BenchResult> results = run_sweep(o, points, problems, available, root);
    const json goals = o.goals ? goals_json(results) : json::array();
    if (!o.json.to_stdout()) print_table(o, results, goals);
    if (!root) return kExitOk;
    if (!write_outputs(o, bench_json(o, results, goals), results)) return kExitUnusable;
    for (const BenchResult& r : results) {
        if (!r.error.empty() && r.error.rfind("skipped: ", 0) != 0) {
            fmt::print(stderr, "moedist bench: {} could not run: {}\n", describe(r.point), r.error);
            return kExitUnusable;
        }
    }
    return kExitOk;
}

}  // namespace moedist::cli
