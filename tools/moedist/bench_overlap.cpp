// `moedist bench --overlap`: a MoE layer of two micro-batches, sequential (dispatch, experts,
// combine, then the next micro-batch) against overlapped (split calls: both dispatches in
// flight, one micro-batch's experts while the other's rows travel, both combines in flight),
// side by side in one run (A B A B) on the same ranks. The experts do --expert-passes
// multiply-adds per received element, so the compute they hide behind is the user's to size.
#include <fmt/core.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "bench_command.hpp"
#if defined(MOEDIST_HAVE_MPI)
#include <mpi.h>

#include "harness/mpi_job.hpp"
#endif

namespace moedist::cli {
namespace {

struct OverlapResult {
    BenchPoint point;
    Spread sequential, overlapped;
    std::string error;
};

harness::JobSpec layer_spec(const BenchOptions& o, const BenchPoint& p) {
    harness::JobSpec spec = bench_spec(o, p);
    spec.micro_batches = 2;
    spec.expert_passes = o.expert_passes;
    return spec;
}

OverlapResult measure_layer(const BenchOptions& o, const BenchPoint& p) {
    OverlapResult r;
    r.point = p;
    const harness::JobSpec spec = layer_spec(o, p);
    std::vector<double> seq, ovl;
#if defined(MOEDIST_HAVE_MPI)
    if (o.backend == "mpi") {
        const harness::JobReport report = harness::run_mpi_job(spec, o.warmup + o.reps, false);
        if (!report.ok) {
            r.error = report.first_mismatch;
            return r;
        }
        for (std::size_t i = static_cast<std::size_t>(o.warmup); i < report.steps.size(); ++i) {
            seq.push_back(report.steps[i].layer_sequential_ms);
            ovl.push_back(report.steps[i].layer_overlapped_ms);
        }
        r.sequential = Spread::of(seq);
        r.overlapped = Spread::of(ovl);
        return r;
    }
#endif
    harness::Job job(spec);
    for (int i = 0; i < o.warmup + o.reps; ++i) {
        const double s = job.layer(false);
        const double v = job.layer(true);
        if (!job.status().ok()) {
            r.error = job.status().message();
            return r;
        }
        if (i < o.warmup) continue;
        seq.push_back(s);
        ovl.push_back(v);
    }
    r.sequential = Spread::of(seq);
    r.overlapped = Spread::of(ovl);
    return r;
}

nlohmann::json overlap_json(const BenchOptions& o, const std::vector<OverlapResult>& results) {
    nlohmann::json points = nlohmann::json::array();
    for (const OverlapResult& r : results) {
        nlohmann::json j = {{"ranks", r.point.ranks},
                            {"tokens", r.point.tokens},
                            {"hidden", r.point.hidden},
                            {"topk", r.point.top_k},
                            {"experts", r.point.experts},
                            {"api", r.point.api}};
        if (!r.error.empty()) {
            j["error"] = r.error;
        } else {
            j["sequential_ms"] = {{"median", r.sequential.median},
                                  {"p10", r.sequential.p10},
                                  {"p90", r.sequential.p90}};
            j["overlapped_ms"] = {{"median", r.overlapped.median},
                                  {"p10", r.overlapped.p10},
                                  {"p90", r.overlapped.p90}};
            j["overlapped_over_sequential"] =
                r.overlapped.median / std::max(r.sequential.median, 1e-9);
        }
        points.push_back(j);
    }
    return {{"command", "bench --overlap"},
            {"backend", o.backend},
            {"expert_passes", o.expert_passes},
            {"reps", o.reps},
            {"points", points}};
}

}  // namespace

int overlap_command(const BenchOptions& o) {
#if defined(MOEDIST_HAVE_MPI)
    int mpi_rank_id = 0;
    if (o.backend == "mpi") {
        MPI_Comm_rank(MPI_COMM_WORLD, &mpi_rank_id);
        if (o.ranks_per_node > 0)
            ::setenv("MOEDIST_RANKS_PER_NODE", std::to_string(o.ranks_per_node).c_str(), 1);
    }
    const bool root = mpi_rank_id == 0;
#else
    if (o.backend == "mpi") {
        fmt::print(stderr, "moedist bench: --backend mpi needs a build with MPI (OpenMPI)\n");
        return kExitUnusable;
    }
    const bool root = true;
#endif
    std::vector<OverlapResult> results;
    for (int w : o.ranks)
        for (int e : o.experts)
            for (int h : o.hidden)
                for (int k : o.top_k)
                    for (const auto& api : o.apis)
                        for (int64_t bs : o.tokens) {
                            BenchPoint p;
                            p.ranks = w, p.tokens = bs, p.hidden = h, p.top_k = k, p.experts = e,
                            p.api = api;
                            p.quant = o.quant.front();
                            results.push_back(measure_layer(o, p));
                        }
    if (!root) return kExitOk;
    if (!o.json.to_stdout()) {
        fmt::print(
            "moedist bench --overlap: a MoE layer of two micro-batches on {} ({} expert passes "
            "per received element), medians of {} runs each, sequential and overlapped "
            "alternating\n",
            o.backend,
            o.expert_passes,
            o.reps);
        fmt::print("{:>6} {:>6} {:>6} {:>3} {:>5} {:>4} | {:>14} {:>14} {:>12}\n",
                   "ranks",
                   "BS",
                   "H",
                   "K",
                   "E",
                   "api",
                   "sequential ms",
                   "overlapped ms",
                   "ovl / seq");
        for (const OverlapResult& r : results) {
            if (!r.error.empty()) {
                fmt::print("{:>6} {:>6} {:>6} {:>3} {:>5} {:>4} | error: {}\n",
                           r.point.ranks,
                           r.point.tokens,
                           r.point.hidden,
                           r.point.top_k,
                           r.point.experts,
                           r.point.api,
                           r.error);
                continue;
            }
            fmt::print("{:>6} {:>6} {:>6} {:>3} {:>5} {:>4} | {:>14.3f} {:>14.3f} {:>12.3f}\n",
                       r.point.ranks,
                       r.point.tokens,
                       r.point.hidden,
                       r.point.top_k,
                       r.point.experts,
                       r.point.api,
                       r.sequential.median,
                       r.overlapped.median,
                       r.overlapped.median / std::max(r.sequential.median, 1e-9));
        }
    }
    if (!emit_json(o.json, overlap_json(o, results), "bench")) return kExitUnusable;
    for (const OverlapResult& r : results)
        if (!r.error.empty()) return kExitUnusable;
    return kExitOk;
}

}  // namespace moedist::cli
