#!/usr/bin/env bash
# Run every berth test: unit tests and the real-host tests (loop images, network namespaces,
# private dockerds). Needs root; each real-host test sets up and removes its own fixtures.
# `scripts/test.sh --unit` (or `cargo unit`, the alias in .cargo/config.toml) runs only the unit
# tests (each crate's lib and binaries): no root, no fixtures, no real host.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${1:-} == --unit ]]; then
    shift
    exec cargo test --workspace --lib --bins --locked "$@"
fi
if [[ $(id -u) != 0 ]]; then
    echo "scripts/test.sh: the real-host tests need root" >&2
    exit 1
fi
scripts/deps.sh
cargo test --workspace --all-targets --locked -- --test-threads="${BERTH_TEST_THREADS:-4}" "$@"
