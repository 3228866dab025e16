// What `moedist bench` prints and writes: the table and its legend, the goal verdicts
// (--goals), the JSON (with the machine and the plot's title) and the CSV.
#include <fmt/core.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

#include "bench_command.hpp"

namespace moedist::cli {

using nlohmann::json;

double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

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
                       p.shared_ranks > 0 ? fmt::format(" S{}", p.shared_ranks) : "") +
           (p.api == "v2" ? " V2" + (p.mask == "none" ? "" : " mask " + p.mask) : "");
}

namespace {

// The bf16 point of the same shape as a quantized one, if the sweep has it.
// The measured point equal to `want`, or null.
const BenchResult* point_result(const std::vector<BenchResult>& all, const BenchPoint& want) {
    for (const BenchResult& other : all)
        if (other.error.empty() && other.point == want) return &other;
    return nullptr;
}

const BenchResult* none_twin(const std::vector<BenchResult>& all, const BenchResult& r) {
    BenchPoint want = r.point;
    want.quant = "none";
    return point_result(all, want);
}

json spread_json(const Spread& s) {
    return {{"median", s.median}, {"p10", s.p10}, {"p90", s.p90}, {"min", s.min}};
}

json ratios_json(const std::vector<BenchResult>& all, const BenchResult& r) {
    json j = json::object();
    auto put = [&](const char* name, double a, double b) {
        if (a > 0 && b > 0) j[name] = a / b;  // a floor this backend does not measure: none
    };
    put("dispatch_vs_write_floor", r.dispatch.median, r.write_floor.median);
    put("combine_vs_read_floor", r.combine.median, r.read_floor.median);
    put("dispatch_vs_memcpy", r.dispatch.median, r.memcpy_floor.median);
    put("dispatch_vs_barrier", r.dispatch.median, r.barrier.median);
    put("combine_vs_barrier", r.combine.median, r.barrier.median);
    if (r.has_baseline) {
        put("baseline_dispatch_speedup", r.baseline_dispatch.median, r.dispatch.median);
        put("baseline_combine_speedup", r.baseline_combine.median, r.combine.median);
    }
    if (const BenchResult* twin = none_twin(all, r); twin != nullptr && twin != &r)
        put("dispatch_vs_bf16", r.dispatch.median, twin->dispatch.median);
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
              {"shared_ranks", p.shared_ranks},
              {"api", p.api},
              {"mask", p.mask}};
    if (!r.error.empty()) {
        j["error"] = r.error;
        return j;
    }
    j["received_bytes"] = r.received_bytes;
    j["combine_bytes"] = r.combine_bytes;
    j["dispatch_ms"] = spread_json(r.dispatch);
    j["combine_ms"] = spread_json(r.combine);
    j["dispatch_combine_ms"] = spread_json(r.total);
    if (r.barrier.median > 0) {  // the mpi backend measures no floor
        j["floors_ms"] = {{"write", spread_json(r.write_floor)},
                          {"read", spread_json(r.read_floor)},
                          {"memcpy", spread_json(r.memcpy_floor)},
                          {"barrier", spread_json(r.barrier)}};
    }
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

std::string cell(const Spread& s) {
    return s.median > 0 ? fmt::format("{:.3f}", s.median) : std::string("-");
}

// a / b, or "-" when either was not measured (never a ratio of zeros).
std::string ratio_cell(double a, double b, int digits) {
    return a > 0 && b > 0 ? fmt::format("{:.{}f}", a / b, digits) : std::string("-");
}

void print_legend(const std::vector<BenchResult>& all) {
    bool baseline = false;
    for (const BenchResult& r : all) baseline = baseline || r.has_baseline;
    fmt::print(
        "columns (ms; wall time from the first rank's start to the last rank's return, medians "
        "over --reps):\n"
        "  point            W ranks, BS tokens per rank, H, K, E, quant, routing (TP2: --tp 2; "
        "S: shared ranks)\n"
        "  dispatch/combine moedist's call, median [p10, p90]; d+c: both, per step\n"
        "  write            write floor: every rank stores the bytes it receives (non-temporal) "
        "- the least\n"
        "                   time any dispatch that writes them can take\n"
        "  read             read floor: every rank streams through the bytes its combine "
        "reads\n"
        "  memcpy           every rank memcpys the bytes it receives\n"
        "  bare             bare call: the same ranks' two rounds (exchange, completion) with no "
        "data - the\n"
        "                   latency floor of any call\n"
        "  a2av-d/a2av-c    the MPI_Alltoallv baseline's dispatch / combine (pack -> "
        "MPI_Alltoallv -> unpack,\n"
        "                   same routing, under mpirun){}\n"
        "  d/wr, c/rd       dispatch / write floor, combine / read floor: 1.00 is as fast as "
        "memory allows\n"
        "  a2av/d, a2av/c   baseline time / moedist time: how many times faster moedist is\n",
        baseline ? "" : "; '-': not measured (--baseline none, or no mpirun)");
}

void print_goals(const json& goals) {
    if (goals.empty()) {
        fmt::print(
            "goals: none of this sweep's points has a goal (they are at W8 H7168 K8 E256 "
            "BS1/8/128/512, W64, and quantized next to bf16)\n");
        return;
    }
    fmt::print("goals:\n");
    for (const json& g : goals) {
        fmt::print("  {:<6} {:<72} {:>7.3f} (goal {})\n",
                   g["met"].get<bool>() ? "met" : "MISSED",
                   g["goal"].get<std::string>(),
                   g["value"].get<double>(),
                   g["bound"].get<std::string>());
    }
}

// "AMD EPYC 9R45" from /proc/cpuinfo's first "model name"; "unknown CPU" without it.
std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("model name", 0) != 0) continue;
        const std::size_t colon = line.find(':');
        if (colon == std::string::npos) break;
        std::string model = line.substr(colon + 1);
        model.erase(0, model.find_first_not_of(" \t"));
        return model;
    }
    return "unknown CPU";
}

int cores() {
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? static_cast<int>(n) : 1;
}

template <typename T>
std::string values(const std::vector<T>& v) {
    std::ostringstream out;
    const std::set<T> seen(v.begin(), v.end());
    for (const T& x : seen) out << (out.tellp() > 0 ? "/" : "") << x;
    return out.str();
}

// The chart's title: the shape (EP, H, K, E, dtype, backend) and the machine.
std::string plot_title(const BenchOptions& o) {
    std::string quant = values(o.quant) == "none" ? "" : ", quant " + values(o.quant);
    return fmt::format("moedist bench: EP {}, H {}, K {}, E {}, {}{}, backend {}\n{} ({} cores)",
                       values(o.ranks),
                       values(o.hidden),
                       values(o.top_k),
                       values(o.experts),
                       o.dtype,
                       quant,
                       o.backend,
                       cpu_model(),
                       cores());
}

}  // namespace

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
        // V2 against V1 on the same tokens (no mask): the V2 machinery costs at most 5%; half
        // of the tokens masked away: at most 0.6 of the unmasked V2 time.
        if (p.api == "v2" && p.mask == "none") {
            BenchPoint v1 = p;
            v1.api = "v1";
            if (const BenchResult* twin = point_result(all, v1))
                add(describe(p) + ": dispatch+combine / V1's",
                    ratio(r.total.median, twin->total.median),
                    "<=",
                    1.05);
        }
        if (p.api == "v2" && p.mask == "prefix:0.5") {
            BenchPoint whole = p;
            whole.mask = "none";
            if (const BenchResult* twin = point_result(all, whole))
                add(describe(p) + ": dispatch+combine / unmasked",
                    ratio(r.total.median, twin->total.median),
                    "<=",
                    0.6);
        }
        if (p.api != "v1") continue;  // the goals below are V1's
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
                    pa.hidden == pb.hidden && pa.top_k == pb.top_k && pa.routing == pb.routing &&
                    pa.api == pb.api && pa.mask == pb.mask)
                    add(describe(a.point) + ": dispatch time per byte / at W 8",
                        per_a / per_b,
                        "<=",
                        1.5);
            }
            pa = a.point;
            if (pa.tokens == 512 && pb.tokens == 128) {
                pa.tokens = pb.tokens;
                if (pa.ranks == pb.ranks && pa.quant == pb.quant && pa.experts == pb.experts &&
                    pa.hidden == pb.hidden && pa.top_k == pb.top_k && pa.routing == pb.routing &&
                    pa.api == pb.api && pa.mask == pb.mask)
                    add(describe(a.point) + ": dispatch time per byte / at BS 128",
                        per_a / per_b,
                        "<=",
                        1.2);
            }
        }
    }
    return goals;
}

json bench_json(const BenchOptions& o, const std::vector<BenchResult>& all, const json& goals) {
    json j = {{"command", "bench"},
              {"backend", o.backend},
              {"reps", o.reps},
              {"warmup", o.warmup},
              {"dtype", o.dtype},
              {"machine", {{"cpu", cpu_model()}, {"cores", cores()}}},
              {"title", plot_title(o)}};
    j["points"] = json::array();
    for (const BenchResult& r : all) j["points"].push_back(result_json(all, r));
    if (o.goals) j["goals"] = goals;
    return j;
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
        if (!r.error.empty()) {  // never a row of zeros for a point that did not run
            fmt::print("{:<34} not run: {}\n", describe(r.point), r.error);
            continue;
        }
        const std::string d = fmt::format(
            "{:.3f} [{:.3f},{:.3f}]", r.dispatch.median, r.dispatch.p10, r.dispatch.p90);
        const std::string c =
            fmt::format("{:.3f} [{:.3f},{:.3f}]", r.combine.median, r.combine.p10, r.combine.p90);
        fmt::print(
            "{:<34} {:>22} {:>22} {:>8} | {:>7} {:>7} {:>7} {:>7} | {:>8} {:>8} | {:>6} {:>6} "
            "{:>6} {:>6}\n",
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
            ratio_cell(r.dispatch.median, r.write_floor.median, 2),
            ratio_cell(r.combine.median, r.read_floor.median, 2),
            r.has_baseline ? ratio_cell(r.baseline_dispatch.median, r.dispatch.median, 1) : "-",
            r.has_baseline ? ratio_cell(r.baseline_combine.median, r.combine.median, 1) : "-");
    }
    for (const BenchResult& r : all) {
        if (!r.baseline_error.empty()) {
            fmt::print("baseline: {}\n", r.baseline_error);
            break;
        }
    }
    print_legend(all);
    if (o.goals) print_goals(goals);
}

void write_csv(const std::string& path, const std::vector<BenchResult>& all) {
    std::ofstream out(path);
    out << "ranks,tokens,hidden,topk,experts,quant,routing,tp,shared_ranks,api,mask,received_bytes,"
           "combine_bytes,dispatch_ms,dispatch_p10,dispatch_p90,combine_ms,combine_p10,combine_p90,"
           "dispatch_combine_ms,write_floor_ms,read_floor_ms,memcpy_ms,bare_call_ms,"
           "alltoallv_dispatch_ms,alltoallv_combine_ms,error\n";
    for (const BenchResult& r : all) {
        const BenchPoint& p = r.point;
        out << fmt::format("{},{},{},{},{},{},{},{},{},{},{},",
                           p.ranks,
                           p.tokens,
                           p.hidden,
                           p.top_k,
                           p.experts,
                           p.quant,
                           p.routing,
                           p.tp,
                           p.shared_ranks,
                           p.api,
                           p.mask);
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

}  // namespace moedist::cli
