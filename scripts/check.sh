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
cargo package --workspace --exclude kiln-bench --exclude alexnet-example --allow-dirty
