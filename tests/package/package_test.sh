#!/usr/bin/env bash
# Installs the build tree's moedist into a fresh prefix and uses it as a user would:
#   - the installed CLI runs (its RPATH finds the installed libmoedist; no LD_LIBRARY_PATH),
#   - tests/package builds against it with find_package(moedist),
#   - the same outside program builds with pkg-config (moedist.pc) and runs.
# Usage: package_test.sh <build dir> <source dir> <work dir>
set -euo pipefail
build=$1 src=$2 work=$3
rm -rf "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
unset LD_LIBRARY_PATH
libdir=$(ls -d "$work/prefix"/lib*/ | head -1)

"$work/prefix/bin/moedist" run --ranks 2 --tokens 3 --hidden 64 --topk 2 --experts 4 --steps 1 \
  | grep -q "check: OK" || { echo "package: the installed moedist CLI failed"; exit 1; }
echo "package: installed CLI ran ($work/prefix/bin/moedist)"

cmake -S "$src/tests/package" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DMOEDIST_SAMPLE_SOURCE="$src/tests/sample/seed_sample.cpp" >/dev/null
cmake --build "$work/build" >/dev/null
echo "package: installed to $work/prefix, find_package(moedist) project built"

export PKG_CONFIG_PATH="$libdir/pkgconfig"
flags=$(pkg-config --cflags --libs moedist)
g++ -std=c++20 -O1 "$src/tests/package/outside.cpp" -o "$work/outside_pkgconfig" $flags -pthread
LD_LIBRARY_PATH="$libdir" "$work/outside_pkgconfig"
echo "package: pkg-config ($(pkg-config --modversion moedist)) build ran: $flags"

# Every aclnnop header (V1 and the V2 family) as C11 against the installed package.
gcc -std=c11 -Wall -Werror "$src/tests/package/aclnn_headers.c" -o "$work/aclnn_headers" $flags
LD_LIBRARY_PATH="$libdir" "$work/aclnn_headers"

# The C++ examples (examples/cpp), built against the installed package and run as a user would.
cmake -S "$src/examples/cpp" -B "$work/examples" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/examples" >/dev/null
for example in threads rank_table join_processes; do
  "$work/examples/$example" | tee "$work/$example.log" | tail -1
  grep -q "^$example: OK" "$work/$example.log" || { echo "package: examples/cpp/$example failed"; exit 1; }
done
if [ -x "$work/examples/mpi_ranks" ] && command -v mpirun >/dev/null; then
  "$src/tests/mpi/run_mpi.sh" 4 2 default default "$work/examples/mpi_ranks" | tee "$work/mpi.log" | tail -1
  grep -q "^mpi: OK" "$work/mpi.log" || { echo "package: examples/cpp/mpi.cpp failed"; exit 1; }
  # The same program through pkg-config's moedist_mpi.pc.
  flags=$(pkg-config --cflags --libs moedist_mpi)
  g++ -std=c++20 -O1 -I"$src/examples/cpp" "$src/examples/cpp/mpi.cpp" -o "$work/mpi_pkgconfig" $flags -pthread
  LD_LIBRARY_PATH="$libdir" "$src/tests/mpi/run_mpi.sh" 2 0 default default -x LD_LIBRARY_PATH "$work/mpi_pkgconfig" \
    | grep -q "^mpi: OK" || { echo "package: moedist_mpi.pc build failed"; exit 1; }
  echo "package: examples/cpp/mpi.cpp ran under mpirun (find_package and moedist_mpi.pc)"
fi
