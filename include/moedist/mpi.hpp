// moedist/mpi.hpp — a moedist group over an MPI communicator (library moedist_mpi;
// find_package(moedist COMPONENTS mpi) gives moedist::moedist_mpi).
//
//   MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
//   moedist::Communicator ep;
//   moedist::throw_if_error(moedist::from_mpi(MPI_COMM_WORLD, &ep));   // every rank calls it
//   moedist::MoeDistributor moe(ep, std::nullopt, config);             // as with any group
//
// Ranks of one node (MPI_COMM_TYPE_SHARED; or, with MOEDIST_RANKS_PER_NODE=n, simulated nodes of
// n consecutive ranks) form a process group: they read each other's tensors in place. Between
// nodes the bytes go over MPI, each token once per destination node and fanned out there
// (hierarchical), and the results are bit-identical to every other backend
// (docs/contract.md §8). Every rank must have the same MOEDIST_RANKS_PER_NODE; ranks that
// disagree, or a rank that never calls, make every rank fail (naming it) within the timeout.
#pragma once

#include <mpi.h>

#include "moedist/communicator.hpp"
#include "moedist/export.hpp"
#include "moedist/status.hpp"

namespace moedist {

// Collective over `comm`: rank MPI_Comm_rank(comm) of a group of MPI_Comm_size(comm) ranks.
// MOEDIST_MPI_ALGO picks how bytes cross nodes: p2p (default: MPI_Isend/Irecv of packed rows),
// rma (one-sided MPI_Rget from MPI_Win_allocate windows) or alltoallv.
MOEDIST_API Status from_mpi(MPI_Comm comm, Communicator* out);

}  // namespace moedist
