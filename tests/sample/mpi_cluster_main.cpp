// The seed's A2 program for a cluster, as users run aclnn programs under mpirun: the seed's own
// RunInProcessA2 (tests/sample/seed_sample.cpp, compiled with its main renamed), one rank per
// MPI process instead of the 16 children the sample forks: rank = OMPI_COMM_WORLD_RANK,
// HcclCommInitClusterInfo(RANK_TABLE_FILE, rank) maps the table's ranks onto the MPI ranks.
#include <cstdio>
#include <cstdlib>

void RunInProcessA2(int rank, int rankSize);

int main() {
    const char* rank = std::getenv("OMPI_COMM_WORLD_RANK");
    const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
    if (rank == nullptr || size == nullptr) {
        std::fprintf(stderr, "run me under mpirun -np 16\n");
        return 2;
    }
    RunInProcessA2(std::atoi(rank), std::atoi(size));
    return 0;
}
