#!/usr/bin/env bash
# The test command: every test in the release profile (the wgpu ones on whatever Vulkan
# driver is installed, the MPI ones under `mpirun -n 2`), then the API docs with
# warnings as errors, then a packaging check of every library crate (the archives
# cargo would publish, each built from its own files). `scripts/test.sh` installs what
# this needs first.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --release --workspace --all-features
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features
# Packaging unpacks each crate into a local registry under CARGO_HOME and builds the
# crates that depend on it against that copy; cargo takes registry crates to never
# change, so an earlier copy of the same version (its sources, and its build in the
# packaging target directory) would stand in for today's. Clear Kiln's, only those.
packaging=target/packaging
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/kiln-* "$packaging"/debug/.fingerprint/kiln-* \
  "$packaging"/debug/deps/*kiln_*
cargo package --workspace --exclude kiln-bench --exclude alexnet-example --allow-dirty --target-dir "$packaging"
