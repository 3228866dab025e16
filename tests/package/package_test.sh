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
