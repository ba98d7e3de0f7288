#!/usr/bin/env bash
# The cluster demo: three berth nodes on this host (each in network and mount namespaces and a
# cgroup of its own), a 3-member etcd from Debian's etcd-server, one HA service (an address and a
# filesystem on a shared loop LUN) and one flex service (dns: an instance on two of the three
# nodes): svc mon, a switch, a node killed, the failover and the flex replacement. As root;
# it never touches the host's interfaces and removes everything it made.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --locked -q -p berth-cli -p berth-agent --bins --example cluster_demo
exec target/debug/examples/cluster_demo
