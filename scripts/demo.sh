#!/usr/bin/env bash
# The berth demo: a service of one filesystem (an ext4 image on a loop device) in a temporary config
# dir, started, shown, stopped. Needs root. Leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --locked -q -p berth-cli
svc=$PWD/target/debug/svc
demo=$(mktemp -d /tmp/berth-demo.XXXXXX)
cleanup() {
    "$svc" demo stop >/dev/null 2>&1 || true
    rm -rf "$demo"
}
trap cleanup EXIT
export BERTH_CONFIG_DIR=$demo/etc BERTH_VAR_DIR=$demo/var BERTH_RUN_DIR=$demo/run BERTH_NODENAME=demo-node
mkdir -p "$BERTH_CONFIG_DIR/services"
truncate -s 64M "$demo/data.img"
mkfs.ext4 -q -F "$demo/data.img"
cat > "$BERTH_CONFIG_DIR/services/demo.toml" <<TOML
[service]
nodes = ["demo-node"]

[fs.1]
dev = "$demo/data.img"
mnt = "$demo/srv/demo"
type = "ext4"
mnt_opt = "rw,noatime"
TOML
run() { echo "+ svc $*"; "$svc" "$@"; }
run demo print status
run demo start
run demo print status
run demo stop
run demo print status
