#!/bin/sh
# Installs the Debian packages activeip builds with, if any is missing (idempotent).
# The CUDA toolkit (with cuBLAS, cuDNN and Thrust) is not a Debian package: when
# /usr/local/cuda exists the build uses it, otherwise it builds the CPU backend only.
set -eu

# clang, its libFuzzer and sanitizer runtimes (libclang-rt-dev) and its OpenMP (libomp-dev) build
# the fuzz harnesses (scripts/fuzz.sh); the program itself is built with g++. slurm-wlm and munge
# run the one-node Slurm cluster of the sweep's Slurm test (tests/slurm_sweep_test.sh). OpenMPI
# (libopenmpi-dev, openmpi-bin) runs data-parallel training over processes (train --distributed).
PACKAGES="cmake g++ make pkg-config doctest-dev libcli11-dev nlohmann-json3-dev zlib1g-dev libsqlite3-dev libssl-dev libturbojpeg0-dev libpng-dev clang libclang-rt-dev libomp-dev slurm-wlm munge libopenmpi-dev openmpi-bin"

missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
  echo "install_deps: all packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install_deps: need root (or sudo) to install:$missing" >&2; exit 1; }
  SUDO=sudo
fi
echo "install_deps: installing$missing"
$SUDO apt-get update -qq
# shellcheck disable=SC2086
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
