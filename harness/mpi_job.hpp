// A harness job under mpirun: one rank per MPI process (MPI_COMM_WORLD rank g = ep·T + tp), the
// mpi backend's groups (from_mpi over the EP and TP sub-communicators), the same inputs and the
// same reference check as every other backend. Collective over MPI_COMM_WORLD.
#pragma once

#include <mpi.h>

#include "harness/job.hpp"

namespace moedist::harness {

struct MpiTraffic {
    int nodes = 1;
    int64_t dispatch_rows = 0;       // rows that crossed nodes (all ranks, per step)
    int64_t dispatch_bytes = 0;      // their bytes, with metadata
    int64_t dispatch_flat_rows = 0;  // what a flat all-to-all would have sent across nodes
    int64_t combine_rows = 0, combine_bytes = 0;
    int64_t row_bytes = 0;
};

// Runs `steps` steps (each phase timed first start to last end over all processes) and, with
// `check`, compares every rank's outputs with the reference. Every process gets the report.
JobReport run_mpi_job(const JobSpec& spec, int steps, bool check, MpiTraffic* traffic = nullptr);

}  // namespace moedist::harness
