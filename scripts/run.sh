#!/usr/bin/env bash
# Builds moedist and runs `moedist run` (arguments are passed on; none = the embedded default).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/scripts/build.sh"
build=${MOEDIST_BUILD_DIR:-$here/build}
exec "$build/bin/moedist" run "$@"
