// `moedist bench --plot`: a PNG of time vs BS per operation (moedist, the MPI_Alltoallv baseline
// and the floors), log scale, drawn by matplotlib through Debian's /usr/bin/python3.
#include <fmt/core.h>

#include <cstdio>
#include <string>

#include "bench_command.hpp"

namespace moedist::cli {
namespace {

// Reads the bench JSON (argv[1]) and writes the chart (argv[2]), titled with the JSON's "title"
// (shape and machine). One panel per operation; one line per (ranks, quant, routing, tp, shared)
// series; floors dashed, the baseline dotted.
constexpr const char* kPlotScript = R"PY(
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

data = json.load(open(sys.argv[1]))
points = [p for p in data["points"] if "error" not in p]
series = {}
for p in points:
    key = (p["ranks"], p["quant"], p["routing"], p["tp"], p["shared_ranks"], p["hidden"], p["topk"], p["experts"], p.get("api", "v1"), p.get("mask", "none"))
    series.setdefault(key, []).append(p)
fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
for ax, op, floor in ((axes[0], "dispatch", "write"), (axes[1], "combine", "read")):
    for key, ps in sorted(series.items()):
        ps = sorted(ps, key=lambda p: p["tokens"])
        bs = [p["tokens"] for p in ps]
        label = "W%d %s %s%s%s%s" % (key[0], key[1], key[2], " TP2" if key[3] == 2 else "",
                                     " S%d" % key[4] if key[4] else "",
                                     (" V2" + ("" if key[9] == "none" else " " + key[9]))
                                     if key[8] == "v2" else "")
        line, = ax.plot(bs, [p[op + "_ms"]["median"] for p in ps], "o-", label="moedist " + label)
        c = line.get_color()
        ax.fill_between(bs, [p[op + "_ms"]["p10"] for p in ps], [p[op + "_ms"]["p90"] for p in ps],
                        color=c, alpha=0.15)
        fl = [p for p in ps if "floors_ms" in p]  # the mpi backend measures no floor
        if fl:
            ax.plot([p["tokens"] for p in fl], [p["floors_ms"][floor]["median"] for p in fl], "--",
                    color=c, alpha=0.8, label="%s floor %s" % (floor, label))
            ax.plot([p["tokens"] for p in fl], [p["floors_ms"]["barrier"]["median"] for p in fl],
                    ":", color="gray", label="bare two-round call %s" % label)
        base = [p for p in ps if "baseline" in p and "dispatch_ms" in p["baseline"]]
        if base:
            ax.plot([p["tokens"] for p in base], [p["baseline"][op + "_ms"]["median"] for p in base],
                    "s-.", color="black", alpha=0.7, label="MPI_Alltoallv baseline %s" % label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("tokens per rank (BS)")
    ax.set_ylabel("wall time, ms (median; band p10-p90)")
    ax.set_title("%s (backend %s)" % (op, data.get("backend", "threads")))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
fig.suptitle(data.get("title", "moedist bench"), fontsize=10)
fig.tight_layout(rect=(0, 0, 1, 0.93))
fig.savefig(sys.argv[2], dpi=110)
)PY";

}  // namespace

bool plot_bench(const std::string& json_path, const std::string& png_path, std::string* error) {
    const std::string script_path = png_path + ".plot.py";
    FILE* script = std::fopen(script_path.c_str(), "w");
    if (script == nullptr) {
        *error =
            "the plot script must be writable next to the PNG, got no access to " + script_path;
        return false;
    }
    std::fputs(kPlotScript, script);
    std::fclose(script);
    const std::string command =
        fmt::format("/usr/bin/python3 '{}' '{}' '{}' 2>&1", script_path, json_path, png_path);
    FILE* pipe = popen(command.c_str(), "r");
    std::string output;
    char chunk[1024];
    while (pipe != nullptr && std::fgets(chunk, sizeof(chunk), pipe) != nullptr) output += chunk;
    const int status = pipe != nullptr ? pclose(pipe) : -1;
    std::remove(script_path.c_str());
    if (status != 0) {
        *error =
            "/usr/bin/python3 with matplotlib (python3-matplotlib, scripts/setup.sh) must "
            "draw the chart, got: " +
            output.substr(0, 400);
        return false;
    }
    return true;
}

}  // namespace moedist::cli
