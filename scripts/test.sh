#!/usr/bin/env bash
# Runs Kiln's tests on a fresh Debian/Ubuntu machine: installs the system packages the
# tests need (software Vulkan for the wgpu tests, the Fashion-MNIST files, Open MPI for
# the data-parallel tests), then runs scripts/check.sh: the tests in the release
# profile, the API docs and the packaging check.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
if command -v apt-get >/dev/null; then
  sudo_if_needed apt-get update
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends mesa-vulkan-drivers dataset-fashion-mnist \
    openmpi-bin libopenmpi-dev libclang-dev
  # A Vulkan driver is now installed: the wgpu tests must run on it, not skip.
  export KILN_REQUIRE_GPU=1 WGPU_BACKEND="${WGPU_BACKEND:-vulkan}"
else
  echo "no apt-get: install a Vulkan driver and an MPI (Open MPI or MPICH) and put Fashion-MNIST in KILN_DATA_DIR yourself;" >&2
  echo "without an adapter the wgpu tests skip with a printed reason" >&2
fi

scripts/check.sh
