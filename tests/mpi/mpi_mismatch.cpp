// Ranks that disagree, under mpirun: every rank must fail together, within MOEDIST_TIMEOUT_MS,
// with a message that says what differs (never one rank failing while the others hang).
//   per-node    MOEDIST_RANKS_PER_NODE set on rank 0 only
//   table-rank  HcclCommInitClusterInfo's rank is wrong on rank 1 (the table's ranks are MPI's)
//   missing     rank 1 never calls from_mpi: the others fail naming it
// Prints "mismatch <mode>: all <n> ranks failed cleanly" from rank 0 when they did.
#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "moedist/communicator.hpp"
#include "moedist/mpi.hpp"

int main(int argc, char** argv) {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    int rank = 0, size = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const std::string mode = argc > 1 ? argv[1] : "";
    moedist::Status status;
    const auto start = std::chrono::steady_clock::now();
    bool expect_failure = true;
    if (mode == "per-node") {
        if (rank == 0) setenv("MOEDIST_RANKS_PER_NODE", "1", 1);
        moedist::Communicator comm;
        status = moedist::from_mpi(MPI_COMM_WORLD, &comm);
    } else if (mode == "table-rank") {
        const std::string path = "/tmp/moedist-mpi-mismatch-" + std::to_string(getuid()) + ".json";
        if (rank == 0) {
            std::ofstream table(path + ".tmp");
            table << "{\"server_count\":\"1\",\"server_list\":[{\"server_id\":\"127.0.0.1\",\"device\":[";
            for (int r = 0; r < size; ++r)
                table << (r ? "," : "") << "{\"device_id\":\"" << r << "\",\"rank_id\":\"" << r << "\"}";
            table << "]}],\"status\":\"completed\",\"version\":\"1.0\"}";
            table.close();
            std::rename((path + ".tmp").c_str(), path.c_str());
        }
        MPI_Barrier(MPI_COMM_WORLD);
        moedist::Communicator comm;
        // Under mpirun the table's group forms over MPI at once (no background join).
        status = moedist::Communicator::from_rank_table(path, rank == 1 ? 0 : rank, &comm);
    } else if (mode == "missing") {
        if (rank == 1) {
            expect_failure = false;  // it never calls
        } else {
            moedist::Communicator comm;
            status = moedist::from_mpi(MPI_COMM_WORLD, &comm);
        }
    } else {
        std::fprintf(stderr, "usage: mpi_mismatch per-node|table-rank|missing\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    int clean = 1;
    if (expect_failure) {
        const std::string& m = status.message();
        const char* want = mode == "per-node"     ? "MOEDIST_RANKS_PER_NODE must be the same"
                           : mode == "table-rank" ? "the rank table's ranks must be the MPI ranks"
                                                  : "rank 1 ";
        clean = !status.ok() && m.find(want) != std::string::npos && seconds < 20;
        std::printf("rank %d (%.1f s): %s\n", rank, seconds, status.ok() ? "succeeded" : m.c_str());
    }
    int all = 0;
    MPI_Allreduce(&clean, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (rank == 0 && all) std::printf("mismatch %s: all %d ranks failed cleanly\n", mode.c_str(), size);
    std::fflush(stdout);
    MPI_Finalize();
    return all ? 0 : 1;
}
