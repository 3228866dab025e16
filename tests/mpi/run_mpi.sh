#!/usr/bin/env bash
# mpirun as CI and users on this kind of machine need it: root allowed, ranks outnumbering cores,
# no binding, shared memory without CMA. Usage: run_mpi.sh NP RANKS_PER_NODE(0: one node) ALGO
# BTL(default|tcp) program [args...]
set -uo pipefail
np=$1 rpn=$2 algo=$3 btl=$4; shift 4
flags=(--oversubscribe --bind-to none --mca btl_vader_single_copy_mechanism none)
[ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
[ "$btl" = tcp ] && flags+=(--mca btl self,tcp --mca btl_tcp_if_include lo)
env=()
[ "$rpn" != 0 ] && env+=(-x MOEDIST_RANKS_PER_NODE="$rpn")
[ "$algo" != default ] && env+=(-x MOEDIST_MPI_ALGO="$algo")
exec timeout 600 mpirun "${flags[@]}" "${env[@]}" -np "$np" "$@"
