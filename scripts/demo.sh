#!/usr/bin/env bash
# The berth demo, in the shape of the OpenSVC docker tutorial: a service of one filesystem (an
# ext4 image on a loop device, holding the private dockerd's data root) and one busybox container.
# Runs in a temporary config dir, as root, and leaves nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --locked -q -p berth-cli -p berth-agent
svc=$PWD/target/debug/svc
svcd=$PWD/target/debug/svcd
demo=$(mktemp -d /tmp/bd.XXXXXX)
export BERTH_CONFIG_DIR=$demo/etc BERTH_VAR_DIR=$demo/var BERTH_RUN_DIR=$demo/run BERTH_NODENAME=demo-node
svcd_pid=
cleanup() {
    [[ -n $svcd_pid ]] && kill "$svcd_pid" 2>/dev/null && wait "$svcd_pid" 2>/dev/null
    "$svc" demo stop >/dev/null 2>&1 || true
    rm -rf "$demo"
}
trap cleanup EXIT
mkdir -p "$BERTH_CONFIG_DIR/services" "$demo/rootfs/bin"

# An image without a registry: busybox-static and its applets, imported as busybox:latest.
cp /bin/busybox "$demo/rootfs/bin/busybox"
for applet in sh ls cat echo sleep ps; do ln -s busybox "$demo/rootfs/bin/$applet"; done

truncate -s 256M "$demo/data.img"
mkfs.ext4 -q -F "$demo/data.img"
cat > "$BERTH_CONFIG_DIR/services/demo.toml" <<TOML
[service]
nodes = ["demo-node"]
docker_data_dir = "$demo/srv/appdata"

[fs.1]
dev = "$demo/data.img"
mnt = "$demo/srv/appdata"
type = "ext4"
mnt_opt = "rw"

[container.1]
type = "docker"
run_image = "busybox:latest"
run_command = "/bin/sh"
TOML
run() { echo "+ svc $*"; "$svc" "$@"; }
run demo print status
run demo startfs
run demo docker images
echo "+ tar -C rootfs -c . | svc demo docker import - busybox:latest"
tar -C "$demo/rootfs" -c . | "$svc" demo docker import - busybox:latest >/dev/null
run demo print status
run demo start
run demo print status
run demo docker ps

# The agent: svcd serves the same tree over HTTP (GET /status), from its cache.
port=$(( 20000 + RANDOM % 20000 ))
printf 'listen = "127.0.0.1:%s"\nmonitor_interval = "2s"\n' "$port" > "$BERTH_CONFIG_DIR/node.toml"
"$svcd" 2>"$demo/svcd.log" &
svcd_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
echo "+ curl http://127.0.0.1:$port/status/demo"
curl -sf "http://127.0.0.1:$port/status/demo"; echo
kill "$svcd_pid"; wait "$svcd_pid" || true; svcd_pid=
run demo stop
run demo print status
