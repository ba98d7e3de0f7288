#!/usr/bin/env bash
# Benchmarks (root; each tool builds its own fixtures and removes them):
# 1. berth-bench: every case against the host's floor in the same run, as one Markdown table;
# 2. svcd-bench: GET /status throughput and latency (wrk), RSS and idle CPU, for 1, 100 and
#    1000 services;
# 3. cluster-bench: owner-key transaction, switch (berth's own part), svcd RSS in a 3-node cluster,
#    failover after node death and partition (lease_ttl 3 s and 5 s);
# 4. collector-bench: berth-collector polling 100 and 1000 simulated nodes every 10 s: CPU, RSS,
#    database growth, /api/services latency (COLLECTOR_SECONDS of measure, default 120);
# 5. parse-bench: reading one service file, in process (ip+vg+fs, containers with and without
#    run_args).
# Copy the output into docs/benchmarks.md with the date and the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
cargo build --release --locked -q -p berth-cli -p berth-bench -p berth-agent -p berth-collector
target/release/berth-bench "$@"
for n in 1 100 1000; do
    echo
    echo "## svcd, $n service(s)"
    target/release/svcd-bench "$n" "${SVCD_IDLE_SECONDS:-10}" 2>&1 | grep -v ' WARN '
done
echo
echo "## cluster"
target/release/cluster-bench 10 100 2>&1 | grep -v '^{"level'
for n in 100 1000; do
    echo
    echo "## berth-collector, $n nodes"
    target/release/collector-bench "$n" "${COLLECTOR_SECONDS:-120}"
done
echo
echo "## reading a service file"
target/release/parse-bench
