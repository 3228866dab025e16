#include "bench_command.hpp"

#include <fmt/core.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "harness/job.hpp"
#include "quant_choices.hpp"

namespace moedist::cli {
namespace {

using harness::Floor;
using harness::Job;
using harness::JobSpec;
using nlohmann::json;

bool parse_routing(const std::string& text, JobSpec* spec) {
    if (text == "uniform") {
        spec->routing = harness::Routing::kUniform;
    } else if (text == "hot") {
        spec->routing = harness::Routing::kHot;
    } else if (text.rfind("zipf", 0) == 0) {
        spec->routing = harness::Routing::kZipf;
        if (text.size() > 5 && text[4] == ':') spec->zipf_alpha = std::stod(text.substr(5));
    } else {
        return false;
    }
    return true;
}

}  // namespace

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
    spec.quant_mode = q.mode;
    spec.target = q.target;
    spec.pre_quantized = q.pre_quantized;
    spec.static_scales = 2;
    spec.seed = o.seed;
    spec.checked = false;
    spec.backend =
        o.backend == "processes" ? harness::Backend::kProcesses : harness::Backend::kThreads;
    parse_routing(p.routing, &spec);
    return spec;
}

namespace {

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
                                    for (int64_t bs : o.tokens)
                                        points.push_back({w, bs, h, k, e, q, r, tp, s});
    return points;
}

class Progress {
public:
    explicit Progress(int total) : total_(total), tty_(isatty(STDERR_FILENO) != 0) {}
    void tick(const std::string& what) {
        ++done_;
        if (!tty_) return;
        const int width = 30;
        const int filled = done_ * width / std::max(total_, 1);
        fmt::print(stderr,
                   "\r[{}{}] {}/{} {:<40}",
                   std::string(static_cast<std::size_t>(filled), '#'),
                   std::string(static_cast<std::size_t>(width - filled), ' '),
                   done_,
                   total_,
                   what.substr(0, 40));
        if (done_ == total_) fmt::print(stderr, "\n");
    }

private:
    int total_, done_ = 0;
    bool tty_;
};

std::string describe(const BenchPoint& p) {
    return fmt::format("W{} BS{} H{} K{} E{} {} {}{}{}",
                       p.ranks,
                       p.tokens,
                       p.hidden,
                       p.top_k,
                       p.experts,
                       p.quant,
                       p.routing,
                       p.tp == 2 ? " TP2" : "",
                       p.shared_ranks > 0 ? fmt::format(" S{}", p.shared_ranks) : "");
}

BenchResult measure(const BenchOptions& o, const BenchPoint& p, Progress* progress) {
    BenchResult result;
    result.point = p;
    JobSpec spec = bench_spec(o, p);
    if (std::string why = harness::spec_error(spec); !why.empty()) {
        result.error = why;
        for (int i = 0; i < o.warmup + o.reps; ++i) progress->tick(describe(p));
        return result;
    }
    Job job(spec);
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

// The bf16 point of the same shape as a quantized one, if the sweep has it.
const BenchResult* none_twin(const std::vector<BenchResult>& all, const BenchResult& r) {
    for (const BenchResult& other : all) {
        BenchPoint a = other.point, b = r.point;
        a.quant = b.quant = "";
        if (other.point.quant == "none" && other.error.empty() && a.ranks == b.ranks &&
            a.tokens == b.tokens && a.hidden == b.hidden && a.top_k == b.top_k &&
            a.experts == b.experts && a.routing == b.routing && a.tp == b.tp &&
            a.shared_ranks == b.shared_ranks)
            return &other;
    }
    return nullptr;
}

json spread_json(const Spread& s) {
    return {{"median", s.median}, {"p10", s.p10}, {"p90", s.p90}, {"min", s.min}};
}

double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

json ratios_json(const std::vector<BenchResult>& all, const BenchResult& r) {
    json j;
    j["dispatch_vs_write_floor"] = ratio(r.dispatch.median, r.write_floor.median);
    j["combine_vs_read_floor"] = ratio(r.combine.median, r.read_floor.median);
    j["dispatch_vs_memcpy"] = ratio(r.dispatch.median, r.memcpy_floor.median);
    j["dispatch_vs_barrier"] = ratio(r.dispatch.median, r.barrier.median);
    j["combine_vs_barrier"] = ratio(r.combine.median, r.barrier.median);
    if (r.has_baseline) {
        j["baseline_dispatch_speedup"] = ratio(r.baseline_dispatch.median, r.dispatch.median);
        j["baseline_combine_speedup"] = ratio(r.baseline_combine.median, r.combine.median);
    }
    if (const BenchResult* twin = none_twin(all, r); twin != nullptr && twin != &r)
        j["dispatch_vs_bf16"] = ratio(r.dispatch.median, twin->dispatch.median);
    return j;
}

json result_json(const std::vector<BenchResult>& all, const BenchResult& r) {
    const BenchPoint& p = r.point;
    json j = {{"ranks", p.ranks},
              {"tokens", p.tokens},
              {"hidden", p.hidden},
              {"topk", p.top_k},
              {"experts", p.experts},
              {"quant", p.quant},
              {"routing", p.routing},
              {"tp", p.tp},
              {"shared_ranks", p.shared_ranks}};
    if (!r.error.empty()) {
        j["error"] = r.error;
        return j;
    }
    j["received_bytes"] = r.received_bytes;
    j["combine_bytes"] = r.combine_bytes;
    j["dispatch_ms"] = spread_json(r.dispatch);
    j["combine_ms"] = spread_json(r.combine);
    j["dispatch_combine_ms"] = spread_json(r.total);
    j["floors_ms"] = {{"write", spread_json(r.write_floor)},
                      {"read", spread_json(r.read_floor)},
                      {"memcpy", spread_json(r.memcpy_floor)},
                      {"barrier", spread_json(r.barrier)}};
    if (r.has_baseline) {
        j["baseline"] = {{"name", "alltoallv"},
                         {"dispatch_ms", spread_json(r.baseline_dispatch)},
                         {"combine_ms", spread_json(r.baseline_combine)}};
    } else if (!r.baseline_error.empty()) {
        j["baseline"] = {{"name", "alltoallv"}, {"error", r.baseline_error}};
    }
    j["ratios"] = ratios_json(all, r);
    return j;
}

// The performance goals of the project (issue 16), judged on the points the sweep has.
json goals_json(const std::vector<BenchResult>& all) {
    json goals = json::array();
    auto add = [&](const std::string& name, double value, const std::string& op, double bound) {
        if (value <= 0) return;  // a floor this backend does not measure (mpi)
        const bool met = op == "<=" ? value <= bound : value >= bound;
        goals.push_back({{"goal", name},
                         {"value", value},
                         {"bound", op + " " + fmt::format("{}", bound)},
                         {"met", met}});
    };
    for (const BenchResult& r : all) {
        if (!r.error.empty()) continue;
        const BenchPoint& p = r.point;
        const bool plain = p.tp == 1 && p.shared_ranks == 0 && p.routing == "uniform";
        const std::string at = describe(p);
        if (plain && p.ranks == 8 && p.tokens == 128 && p.hidden == 7168 && p.top_k == 8 &&
            p.experts == 256 && p.quant == "none") {
            add(at + ": dispatch / write floor",
                ratio(r.dispatch.median, r.write_floor.median),
                "<=",
                1.25);
            add(at + ": combine / read floor",
                ratio(r.combine.median, r.read_floor.median),
                "<=",
                1.3);
            if (r.has_baseline) {
                add(at + ": alltoallv dispatch / dispatch",
                    ratio(r.baseline_dispatch.median, r.dispatch.median),
                    ">=",
                    4);
                add(at + ": alltoallv combine / combine",
                    ratio(r.baseline_combine.median, r.combine.median),
                    ">=",
                    4);
            }
        }
        if (p.quant != "none" && p.quant.rfind("pre-", 0) != 0 && p.quant != "static-hif8") {
            if (const BenchResult* twin = none_twin(all, r))
                add(at + ": dispatch / bf16 dispatch",
                    ratio(r.dispatch.median, twin->dispatch.median),
                    "<=",
                    0.8);
        }
        if (plain && (p.tokens == 1 || p.tokens == 8) && p.quant == "none") {
            add(at + ": dispatch / bare call", ratio(r.dispatch.median, r.barrier.median), "<=", 2);
            add(at + ": combine / bare call", ratio(r.combine.median, r.barrier.median), "<=", 2);
            if (r.has_baseline) {
                add(at + ": alltoallv dispatch / dispatch",
                    ratio(r.baseline_dispatch.median, r.dispatch.median),
                    ">=",
                    5);
                add(at + ": alltoallv combine / combine",
                    ratio(r.baseline_combine.median, r.combine.median),
                    ">=",
                    5);
            }
        }
    }
    // Growth: time per received byte at W = 64 against W = 8, and at BS 512 against BS 128.
    for (const BenchResult& a : all) {
        for (const BenchResult& b : all) {
            if (!a.error.empty() || !b.error.empty() || a.received_bytes == 0 ||
                b.received_bytes == 0)
                continue;
            BenchPoint pa = a.point, pb = b.point;
            const double per_a = a.dispatch.median / static_cast<double>(a.received_bytes);
            const double per_b = b.dispatch.median / static_cast<double>(b.received_bytes);
            if (pa.ranks == 64 && pb.ranks == 8) {
                pa.ranks = pb.ranks;
                if (pa.tokens == pb.tokens && pa.quant == pb.quant && pa.experts == pb.experts &&
                    pa.hidden == pb.hidden && pa.top_k == pb.top_k && pa.routing == pb.routing)
                    add(describe(a.point) + ": dispatch time per byte / at W 8",
                        per_a / per_b,
                        "<=",
                        1.5);
            }
            pa = a.point;
            if (pa.tokens == 512 && pb.tokens == 128) {
                pa.tokens = pb.tokens;
                if (pa.ranks == pb.ranks && pa.quant == pb.quant && pa.experts == pb.experts &&
                    pa.hidden == pb.hidden && pa.top_k == pb.top_k && pa.routing == pb.routing)
                    add(describe(a.point) + ": dispatch time per byte / at BS 128",
                        per_a / per_b,
                        "<=",
                        1.2);
            }
        }
    }
    return goals;
}

std::string cell(const Spread& s) {
    return s.median > 0 ? fmt::format("{:.3f}", s.median) : std::string("-");
}

void print_table(const BenchOptions& o, const std::vector<BenchResult>& all, const json& goals) {
    fmt::print(
        "moedist bench: backend {}, {} reps after {} warm-up, times in ms (median; [p10, p90] for "
        "dispatch and combine)\n",
        o.backend,
        o.reps,
        o.warmup);
    fmt::print(
        "{:<34} {:>22} {:>22} {:>8} | {:>7} {:>7} {:>7} {:>7} | {:>8} {:>8} | {:>6} {:>6} {:>6} "
        "{:>6}\n",
        "point",
        "dispatch",
        "combine",
        "d+c",
        "write",
        "read",
        "memcpy",
        "bare",
        "a2av-d",
        "a2av-c",
        "d/wr",
        "c/rd",
        "a2av/d",
        "a2av/c");
    for (const BenchResult& r : all) {
        if (!r.error.empty()) {
            fmt::print("{:<34} error: {}\n", describe(r.point), r.error);
            continue;
        }
        const std::string d = fmt::format(
            "{:.3f} [{:.3f},{:.3f}]", r.dispatch.median, r.dispatch.p10, r.dispatch.p90);
        const std::string c =
            fmt::format("{:.3f} [{:.3f},{:.3f}]", r.combine.median, r.combine.p10, r.combine.p90);
        fmt::print(
            "{:<34} {:>22} {:>22} {:>8} | {:>7} {:>7} {:>7} {:>7} | {:>8} {:>8} | {:>6.2f} "
            "{:>6.2f} {:>6} {:>6}\n",
            describe(r.point),
            d,
            c,
            cell(r.total),
            cell(r.write_floor),
            cell(r.read_floor),
            cell(r.memcpy_floor),
            cell(r.barrier),
            r.has_baseline ? cell(r.baseline_dispatch) : "-",
            r.has_baseline ? cell(r.baseline_combine) : "-",
            ratio(r.dispatch.median, r.write_floor.median),
            ratio(r.combine.median, r.read_floor.median),
            r.has_baseline
                ? fmt::format("{:.1f}", ratio(r.baseline_dispatch.median, r.dispatch.median))
                : "-",
            r.has_baseline
                ? fmt::format("{:.1f}", ratio(r.baseline_combine.median, r.combine.median))
                : "-");
    }
    for (const BenchResult& r : all) {
        if (!r.baseline_error.empty()) {
            fmt::print("baseline: {}\n", r.baseline_error);
            break;
        }
    }
    if (!goals.empty()) {
        fmt::print("goals:\n");
        for (const json& g : goals) {
            fmt::print("  {:<6} {:<72} {:>7.3f} (goal {})\n",
                       g["met"].get<bool>() ? "met" : "MISSED",
                       g["goal"].get<std::string>(),
                       g["value"].get<double>(),
                       g["bound"].get<std::string>());
        }
    }
}

void write_csv(const std::string& path, const std::vector<BenchResult>& all) {
    std::ofstream out(path);
    out << "ranks,tokens,hidden,topk,experts,quant,routing,tp,shared_ranks,received_bytes,"
           "combine_bytes,dispatch_ms,dispatch_p10,dispatch_p90,combine_ms,combine_p10,combine_p90,"
           "dispatch_combine_ms,write_floor_ms,read_floor_ms,memcpy_ms,bare_call_ms,"
           "alltoallv_dispatch_ms,alltoallv_combine_ms,error\n";
    for (const BenchResult& r : all) {
        const BenchPoint& p = r.point;
        out << fmt::format("{},{},{},{},{},{},{},{},{},",
                           p.ranks,
                           p.tokens,
                           p.hidden,
                           p.top_k,
                           p.experts,
                           p.quant,
                           p.routing,
                           p.tp,
                           p.shared_ranks);
        if (!r.error.empty()) {
            out << ",,,,,,,,,,,,,,," << '"' << r.error << '"' << "\n";
            continue;
        }
        out << fmt::format(
            "{},{},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},",
            r.received_bytes,
            r.combine_bytes,
            r.dispatch.median,
            r.dispatch.p10,
            r.dispatch.p90,
            r.combine.median,
            r.combine.p10,
            r.combine.p90,
            r.total.median,
            r.write_floor.median,
            r.read_floor.median,
            r.memcpy_floor.median,
            r.barrier.median);
        if (r.has_baseline) {
            out << fmt::format(
                "{:.6f},{:.6f},", r.baseline_dispatch.median, r.baseline_combine.median);
        } else {
            out << ",,";
        }
        out << "\n";
    }
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
    bench->add_option("--ranks", o->ranks, "EP ranks W (list: 8,16,64)")->delimiter(',');
    bench->add_option("--tokens", o->tokens, "BS per rank (list, default 1,8,32,128)")
        ->delimiter(',');
    bench->add_option("--hidden", o->hidden, "H (list)")->delimiter(',');
    bench->add_option("--topk", o->top_k, "K (list)")->delimiter(',');
    bench->add_option("--experts", o->experts, "E (list, default 256)")->delimiter(',');
    bench->add_option("--quant", o->quant, "quant modes (list of `moedist run --quant` names)")
        ->delimiter(',')
        ->check(CLI::IsMember(quant_names()));
    bench->add_option("--routing", o->routing, "uniform|zipf[:alpha]|hot (list)")->delimiter(',');
    bench->add_option("--tp", o->tp, "TP size 1 or 2 (list)")->delimiter(',');
    bench->add_option("--shared-ranks", o->shared_ranks, "shared-expert ranks S (list)")
        ->delimiter(',');
    bench->add_option("--dtype", o->dtype, "bf16|fp16")->check(CLI::IsMember({"bf16", "fp16"}));
    bench
        ->add_option("--backend",
                     o->backend,
                     "threads (default), processes, or mpi (under mpirun -np W: the baseline in "
                     "the same mpirun)")
        ->check(CLI::IsMember({"threads", "processes", "mpi"}));
    bench
        ->add_option_function<int>(
            "--ranks-per-node",
            [](const int& n) { ::setenv("MOEDIST_RANKS_PER_NODE", std::to_string(n).c_str(), 1); },
            "mpi backend: simulated nodes of n consecutive ranks (sets MOEDIST_RANKS_PER_NODE)")
        ->check(CLI::Range(1, 65536));
    bench->add_option("--baseline", o->baseline, "auto|alltoallv|none (default auto)")
        ->check(CLI::IsMember({"auto", "alltoallv", "none"}));
    bench->add_option("--reps", o->reps, "measured repetitions per point (default 20)")
        ->check(CLI::Range(1, 100000));
    bench->add_option("--warmup", o->warmup, "warm-up repetitions per point (default 3)")
        ->check(CLI::Range(0, 1000));
    bench->add_option("--seed", o->seed, "input seed");
    bench->add_option("--json", o->json_path, "write the results as JSON to this file");
    bench->add_option("--csv", o->csv_path, "write the results as CSV to this file");
    bench->add_option("--plot", o->plot_path, "write a PNG chart (time vs BS, log scale)");
    return bench;
}

int bench_command(const BenchOptions& o) {
    const std::vector<BenchPoint> points = sweep(o);
    std::string why_not;
    const bool baseline = o.baseline == "alltoallv" ||
                          (o.baseline == "auto" && alltoallv_baseline_available(&why_not));
    if (o.baseline == "alltoallv" && !alltoallv_baseline_available(&why_not)) {
        fmt::print(stderr, "moedist bench: --baseline alltoallv: {}\n", why_not);
        return 2;
    }
    const bool mpi = o.backend == "mpi";
#if defined(MOEDIST_HAVE_MPI)
    const bool root = !mpi || mpi_rank() == 0;
#else
    const bool root = true;
    if (mpi) {
        fmt::print(stderr, "moedist bench: --backend mpi needs a build with MPI (OpenMPI)\n");
        return 2;
    }
#endif
    if (!root && std::freopen("/dev/null", "w", stdout) == nullptr) return 1;
    Progress progress(root ? static_cast<int>(points.size()) * (o.warmup + o.reps) : 0);
    std::vector<BenchResult> results;
    for (const BenchPoint& p : points) {
#if defined(MOEDIST_HAVE_MPI)
        if (mpi) {  // this mpirun's processes: moedist and the baseline side by side
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
    const json goals = goals_json(results);
    print_table(o, results, goals);
    json all = {{"backend", o.backend}, {"reps", o.reps}, {"warmup", o.warmup}, {"dtype", o.dtype}};
    all["points"] = json::array();
    for (const BenchResult& r : results) all["points"].push_back(result_json(results, r));
    all["goals"] = goals;
    if (!root) return 0;
    std::string json_path = o.json_path;
    if (json_path.empty() && !o.plot_path.empty()) json_path = o.plot_path + ".json";
    if (!json_path.empty()) {
        std::ofstream(json_path) << all.dump(2) << "\n";
        fmt::print("wrote {}\n", json_path);
    }
    if (!o.csv_path.empty()) {
        write_csv(o.csv_path, results);
        fmt::print("wrote {}\n", o.csv_path);
    }
    if (!o.plot_path.empty()) {
        std::string error;
        if (!plot_bench(json_path, o.plot_path, &error)) {
            fmt::print(stderr, "moedist bench: --plot: {}\n", error);
            return 1;
        }
        fmt::print("wrote {}\n", o.plot_path);
    }
    for (const BenchResult& r : results) {
        if (!r.error.empty()) return 1;
    }
    return 0;
}

}  // namespace moedist::cli
