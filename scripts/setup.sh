#!/usr/bin/env bash
# Installs every Debian package moedist needs to build, test and benchmark. Idempotent.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libfmt-dev libspdlog-dev nlohmann-json3-dev
  clang libclang-rt-14-dev valgrind
  openmpi-bin libopenmpi-dev
  libucx-dev ucx-utils libssl-dev iproute2
  python3-matplotlib python3-numpy
  pybind11-dev python3-pybind11 python3-dev python3-pip python3-setuptools python3-wheel
  python3-torch python3-pytest python3-mpi4py
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
