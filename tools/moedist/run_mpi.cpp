#include "run_mpi.hpp"

#include <mpi.h>

namespace moedist::cli {

int mpi_rank() {
    int initialized = 0, rank = 0;
    MPI_Initialized(&initialized);
    if (initialized) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank;
}

int mpi_world_size() {
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    return size;
}

int with_mpi(int argc, char** argv, const std::function<int()>& body) {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    int code = body();
    MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Finalize();
    return code;
}

harness::JobReport run_mpi(const harness::JobSpec& spec,
                           int steps,
                           bool check,
                           harness::MpiTraffic* traffic) {
    return harness::run_mpi_job(spec, steps, check, traffic);
}

}  // namespace moedist::cli
