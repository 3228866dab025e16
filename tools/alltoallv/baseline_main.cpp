// The usual alternative `moedist bench --baseline alltoallv` measures moedist against: MoE
// dispatch and combine as CPU MoE layers do them over MPI (Megatron-style token permutation),
// one rank per MPI process, with the harness's inputs and routing (same seed → same expert ids).
//
//   dispatch: permute my (token, k) entries by (destination rank, local expert) and pack their x
//             rows (index_select) → MPI_Alltoall of the per-(rank, expert) counts →
//             MPI_Alltoallv of the rows → unpack into expert-major order ([local expert][source])
//   combine:  permute the expert outputs back to [source][local expert] → MPI_Alltoallv →
//             acc[t] += w[t,k] · row in fp32 for k in order → x[t] = rne(acc)
//
// Each phase is timed between barriers; a rep's time is the slowest rank's. Rank 0 prints one
// JSON line: {"dispatch_ms": [...], "combine_ms": [...], "ranks": W, ...}. Shared experts and TP
// are not part of the baseline (the bench gives them no baseline column).
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "harness/alltoallv_baseline.hpp"

using moedist::harness::JobSpec;

int main(int argc, char** argv) {
    MPI_Init(&argc, &argv);
    int rank = 0, world = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    CLI::App app{
        "pack -> MPI_Alltoallv -> unpack MoE dispatch and combine (moedist bench baseline)"};
    JobSpec spec;
    int reps = 20, warmup = 3;
    std::string routing = "uniform";
    app.add_option("--tokens", spec.tokens);
    app.add_option("--hidden", spec.hidden);
    app.add_option("--topk", spec.top_k);
    app.add_option("--experts", spec.moe_expert_num);
    app.add_option("--routing", routing);
    app.add_option("--zipf-alpha", spec.zipf_alpha);
    app.add_option("--seed", spec.seed);
    app.add_option("--reps", reps);
    app.add_option("--warmup", warmup);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (rank == 0) std::fprintf(stderr, "moedist-alltoallv-baseline: %s\n", e.what());
        MPI_Finalize();
        return 2;
    }
    spec.ep_world_size = world;
    spec.routing = routing == "zipf"  ? moedist::harness::Routing::kZipf
                   : routing == "hot" ? moedist::harness::Routing::kHot
                                      : moedist::harness::Routing::kUniform;
    if (spec.moe_expert_num % world != 0 || spec.top_k > spec.moe_expert_num) {
        if (rank == 0)
            std::fprintf(
                stderr,
                "moedist-alltoallv-baseline: experts must be a multiple of ranks and >= topk\n");
        MPI_Finalize();
        return 2;
    }
    const moedist::harness::BaselineTimes timing =
        moedist::harness::run_alltoallv_baseline(spec, warmup, reps);
    if (rank == 0) {
        std::string line = "{\"ranks\": " + std::to_string(world) + ", \"dispatch_ms\": [";
        for (std::size_t i = 0; i < timing.dispatch_ms.size(); ++i)
            line += (i ? ", " : "") + std::to_string(timing.dispatch_ms[i]);
        line += "], \"combine_ms\": [";
        for (std::size_t i = 0; i < timing.combine_ms.size(); ++i)
            line += (i ? ", " : "") + std::to_string(timing.combine_ms[i]);
        line += "]}";
        std::printf("%s\n", line.c_str());
    }
    MPI_Finalize();
    return 0;
}
