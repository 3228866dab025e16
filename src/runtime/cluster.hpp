// Rank tables (HcclCommInitClusterInfo, Communicator::from_rank_table): the file read safely and
// parsed (rank_table.hpp), its servers checked to be this host, and the rank joined to the
// table's group of processes of this host, whatever the process layout of its ranks (all
// threads of one process, one process each as the A2 sample program forks them, or a mix).
//
// The ranks find each other through an abstract Unix socket named from the table's canonical
// path, the effective user id and the launch (transport/socket_rendezvous.hpp), within
// MOEDIST_TIMEOUT_MS; the group is called "hccl_<hash of path>-<uid>-<hash of launch>". A table
// that lists a server that is not this host is a multi-host job: it runs under mpirun (the mpi
// backend); without it the join fails at once.
#pragma once

#include <filesystem>
#include <string>

#include "hccl/hccl_types.h"
#include "moedist/communicator.hpp"
#include "moedist/export.hpp"
#include "runtime/rank_table.hpp"

namespace moedist::runtime {

struct LoadedTable {
    std::filesystem::path path;  // canonical
    RankTable table;
};

// Reads and parses the table `cluster_info` names. HCCL_SUCCESS, or a code with *message.
HcclResult load_rank_table(const char* cluster_info, LoadedTable* out, std::string* message);

// True when a table's server_id names this host: a loopback address (127.0.0.0/8, ::1),
// "localhost", this host's name or one of its addresses; "" (no server_id) counts as local.
bool server_is_local(const std::string& server_id);

// Joins rank `rank` of the table's group. HCCL_SUCCESS, or a code with *message.
HcclResult join_rank_table(const LoadedTable& table,
                           uint32_t rank,
                           Communicator* out,
                           std::string* message);

// Under mpirun a rank table's ranks are the MPI ranks (one per process): libmoedist_mpi installs
// a joiner (when a program links it) that forms the table's group over MPI_COMM_WORLD instead
// of the socket rendezvous, servers on other hosts included.
using MpiClusterJoin = Status (*)(int rank, int size, Communicator* out);
MOEDIST_API void set_mpi_cluster_join(MpiClusterJoin join);

// The launch this process belongs to: MOEDIST_JOB_ID when set, else the job id a known launcher
// set (torchrun, Slurm, PBS, LSF, Flux, PMIx), else its parent process (pid and start time).
// Ranks of a rank table meet only ranks of their own launch.
std::string launch_identity();

// The key of a loaded table's rendezvous for this process: hashes of the canonical path and the
// launch, and the effective uid ("\0moedist/<key>/<i>" are its socket names).
std::string rendezvous_key(const LoadedTable& loaded);

// A hash of what a rank read in a rank table (its rank count, every rank's server and device_id),
// which every rank of a launch must agree on.
uint64_t table_fingerprint(const RankTable& table);

// True when this process was started by mpirun (OpenMPI's or PMIx's environment).
bool under_mpirun();

}  // namespace moedist::runtime
