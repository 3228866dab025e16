// Ranks as MPI processes (moedist::from_mpi, library moedist_mpi): run with
//   mpirun -np 4 ./mpi_ranks          (as root: --allow-run-as-root; more ranks than cores:
//                                      --oversubscribe --bind-to none)
// Ranks of one node share memory; with MOEDIST_RANKS_PER_NODE=2 one host acts as two nodes and
// the bytes between them go over MPI.
#include <mpi.h>
#include <moedist/mpi.hpp>

#include "example_job.hpp"

int main(int argc, char** argv) {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    int ok = 0;
    {
        moedist::Communicator comm;
        moedist::Status s = moedist::from_mpi(MPI_COMM_WORLD, &comm);
        if (s.ok()) {
            ok = example::run_layer(comm) ? 1 : 0;
        } else {
            std::fprintf(stderr, "%s\n", s.message().c_str());
        }
    }
    int all = 0, rank = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 0) std::printf("mpi: %s\n", all ? "OK" : "FAILED");
    MPI_Finalize();
    return all ? 0 : 1;
}
