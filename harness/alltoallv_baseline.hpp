// The usual alternative moedist measures itself against (moedist bench): MoE dispatch and
// combine as CPU MoE layers do them over MPI, Megatron-style:
//
//   dispatch: permute my (token, k) entries by (destination rank, local expert) and pack their x
//             rows (index_select) → MPI_Alltoall of the per-(rank, expert) counts →
//             MPI_Alltoallv of the rows → unpack into expert-major order ([local expert][source])
//   combine:  permute the expert outputs back to [source][local expert] → MPI_Alltoallv →
//             acc[t] += w[t,k] · row in fp32 for k in order → x[t] = rne(acc)
//
// One rank per MPI process of MPI_COMM_WORLD, with the harness's inputs and routing (the same
// seed gives the same expert ids as moedist's run). Each phase is timed between barriers; a
// rep's time is the slowest rank's. Shared experts and TP are not part of the baseline.
#pragma once

#include <vector>

#include "harness/job.hpp"

namespace moedist::harness {

struct BaselineTimes {
    std::vector<double> dispatch_ms, combine_ms;  // the measured reps (every rank gets them)
};

// Collective over MPI_COMM_WORLD (size = spec.ep_world_size).
BaselineTimes run_alltoallv_baseline(const JobSpec& spec, int warmup, int reps);

}  // namespace moedist::harness
