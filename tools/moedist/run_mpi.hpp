// `moedist run --backend mpi` (built with MPI): the job under mpirun, one rank per process.
#pragma once

#include <functional>

#include "harness/job.hpp"
#include "harness/mpi_job.hpp"

namespace moedist::cli {

// MPI_Init_thread, `body`, MPI_Finalize; the exit code is rank 0's (every rank returns it).
int with_mpi(int argc, char** argv, const std::function<int()>& body);
int mpi_rank();
int mpi_world_size();
harness::JobReport run_mpi(const harness::JobSpec& spec,
                           int steps,
                           bool check,
                           harness::MpiTraffic* traffic);

}  // namespace moedist::cli
