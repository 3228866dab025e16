// The MPI_Alltoallv baseline of `moedist bench`: moedist-alltoallv-baseline (next to this
// executable) under mpirun, one MPI process per rank, with the point's shape and routing.
#include <fmt/core.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "bench_command.hpp"

namespace moedist::cli {
namespace {

std::string baseline_path() {
    std::error_code error;
    const auto self = std::filesystem::read_symlink("/proc/self/exe", error);
    if (error) return {};
    return (self.parent_path() / "moedist-alltoallv-baseline").string();
}

bool mpirun_found() { return std::system("command -v mpirun >/dev/null 2>&1") == 0; }

}  // namespace

bool alltoallv_baseline_available(std::string* why) {
    if (!mpirun_found()) {
        *why = "mpirun must be on PATH (OpenMPI: scripts/setup.sh installs it), got none";
        return false;
    }
    const std::string path = baseline_path();
    if (path.empty() || access(path.c_str(), X_OK) != 0) {
        *why =
            "moedist-alltoallv-baseline must be next to moedist (built when CMake finds MPI), "
            "got none at '" +
            path + "'";
        return false;
    }
    return true;
}

bool run_alltoallv_baseline(const BenchOptions& o,
                            const BenchPoint& p,
                            Spread* dispatch,
                            Spread* combine,
                            std::string* error) {
    std::string routing = p.routing, alpha = "1.2";
    if (routing.rfind("zipf:", 0) == 0) {
        alpha = routing.substr(5);
        routing = "zipf";
    }
    // As root OpenMPI needs --allow-run-as-root; --oversubscribe lets ranks outnumber cores;
    // no binding (ranks share the cores); the shared-memory BTL without CMA is faster here.
    const std::string command = fmt::format(
        "mpirun {} --oversubscribe --bind-to none --mca btl_vader_single_copy_mechanism none "
        "-np {} '{}' --tokens {} --hidden {} --topk {} --experts {} --routing '{}' "
        "--zipf-alpha '{}' --seed {} --reps {} --warmup {} 2>&1",
        geteuid() == 0 ? "--allow-run-as-root" : "",
        p.ranks,
        baseline_path(),
        p.tokens,
        p.hidden,
        p.top_k,
        p.experts,
        routing,
        alpha,
        o.seed,
        o.reps,
        o.warmup);
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) {
        *error = "mpirun must start, got popen failure";
        return false;
    }
    std::string output, line;
    char chunk[4096];
    while (std::fgets(chunk, sizeof(chunk), pipe) != nullptr) output += chunk;
    const int status = pclose(pipe);
    std::size_t start = output.rfind("{\"ranks\"");
    if (status != 0 || start == std::string::npos) {
        *error =
            fmt::format("mpirun -np {} moedist-alltoallv-baseline must succeed, got exit {}: {}",
                        p.ranks,
                        status,
                        output.substr(0, 300));
        return false;
    }
    const auto parsed = nlohmann::json::parse(output.substr(start), nullptr, false);
    if (parsed.is_discarded() || !parsed.contains("dispatch_ms")) {
        *error = "the baseline's output must be JSON, got: " + output.substr(start, 200);
        return false;
    }
    *dispatch = Spread::of(parsed["dispatch_ms"].get<std::vector<double>>());
    *combine = Spread::of(parsed["combine_ms"].get<std::vector<double>>());
    return true;
}

}  // namespace moedist::cli
