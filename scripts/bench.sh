#!/usr/bin/env bash
# Benchmarks: each case against the host's floor in the same run (root; builds its own fixtures).
# Prints one Markdown table; copy it into docs/benchmarks.md with the date and the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --locked -q -p berth-cli -p berth-bench
exec target/release/berth-bench "$@"
