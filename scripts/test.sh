#!/usr/bin/env bash
# Builds moedist and runs the whole test suite (ctest). Extra arguments go to cmake.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/scripts/build.sh" "$@"
build=${MOEDIST_BUILD_DIR:-$here/build}
ctest --test-dir "$build" --output-on-failure -j "$(nproc)"
