#!/usr/bin/env bash
# Installs the build tree's moedist into a fresh prefix and builds tests/package against it.
# Usage: package_test.sh <build dir> <source dir> <work dir>
set -euo pipefail
build=$1 src=$2 work=$3
rm -rf "$work"
cmake --install "$build" --prefix "$work/prefix" >/dev/null
cmake -S "$src/tests/package" -B "$work/build" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DMOEDIST_SAMPLE_SOURCE="$src/tests/sample/seed_sample.cpp" >/dev/null
cmake --build "$work/build" >/dev/null
echo "package: installed to $work/prefix, outside project built"
