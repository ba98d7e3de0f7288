#!/usr/bin/env bash
# Install what berth's demo and tests need on a Debian 12 machine (root). Idempotent: installs only
# what is missing, so a second run costs nothing.
set -euo pipefail
need=()
for pair in dockerd:docker.io busybox:busybox-static vgs:lvm2 mkfs.ext4:e2fsprogs e2fsck:e2fsprogs \
            fuser:psmisc ip:iproute2 iptables:iptables nsenter:util-linux losetup:mount curl:curl \
            strip:binutils objdump:binutils htpasswd:apache2-utils openssl:openssl dpkg-deb:dpkg \
            zsh:zsh fish:fish etcd:etcd-server etcdctl:etcd-client protoc:protobuf-compiler \
            chromium:chromium rsync:rsync ssh:openssh-client sshd:openssh-server ssh-keygen:openssh-client; do
    cmd=${pair%%:*} pkg=${pair##*:}
    command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
# etcd-client's build.rs (the Rust crate) needs protoc AND the well-known .proto files.
[[ -e /usr/include/google/protobuf/descriptor.proto ]] || need+=(libprotobuf-dev)
if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo is missing: install the Rust 1.95 toolchain (rustup)" >&2; exit 1; }
