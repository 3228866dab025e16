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
# Sanitizer builds: OpenMPI 4.1 leaks at MPI_Finalize from components it has already dlclosed
# (no symbol to suppress), so LeakSanitizer is off under mpirun; every other ASan/UBSan check and
# TSan stay on (tsan.supp: OpenMPI's own lock order); the same core code is leak-checked by the
# threads and processes suites.
if [ -n "${MOEDIST_SANITIZED:-}" ]; then
  env+=(-x ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}")
  env+=(-x TSAN_OPTIONS="suppressions=$(cd "$(dirname "$0")" && pwd)/tsan.supp:${TSAN_OPTIONS:-}")
fi
exec timeout 600 mpirun "${flags[@]}" "${env[@]}" -np "$np" "$@"
