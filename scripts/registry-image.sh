#!/usr/bin/env bash
# Build the image of a private Docker registry from Debian's docker-registry package (distribution
# 2.8) and import it into a service's private dockerd: no hub, no network beyond the Debian
# mirror that apt already uses.
#
#   scripts/registry-image.sh SVC [IMAGE]     import it as IMAGE (default registry:2) through
#                                             `svc SVC docker import` (svc: $SVC, else `svc`)
#   scripts/registry-image.sh --tar FILE      only write the rootfs tar to FILE
#   scripts/registry-image.sh --fetch         only download the .deb (scripts/deps.sh does, so
#                                             a host with no mirror later still builds it)
#
# The package is never installed (its postinst would start a registry on the host's port 5000):
# `apt-get download` fetches the .deb into $BERTH_REGISTRY_DEB_DIR (default /var/cache/berth,
# kept, so a second run needs no mirror) and `dpkg-deb -x` unpacks it. The image holds the
# binary, the shared libraries ldd lists for it, and a config file; TLS and htpasswd are turned
# on by the container's environment (REGISTRY_HTTP_TLS_*, REGISTRY_AUTH_HTPASSWD_*, see
# docs/registry.md).
set -euo pipefail

usage() { echo "usage: $0 SVC [IMAGE] | $0 --tar FILE | $0 --fetch" >&2; exit 2; }
(($# >= 1)) || usage
tar_out= svc= image=registry:2 fetch_only=
if [[ $1 == --fetch ]]; then
    (($# == 1)) || usage
    fetch_only=1
elif [[ $1 == --tar ]]; then
    (($# == 2)) || usage
    tar_out=$2
else
    svc=$1
    image=${2:-registry:2}
fi

cache=${BERTH_REGISTRY_DEB_DIR:-/var/cache/berth}
mkdir -p "$cache"
deb=$(ls "$cache"/docker-registry_2.8.*.deb 2>/dev/null | tail -n 1 || true)
if [[ -z $deb ]]; then
    # apt drops privileges to _apt for downloads; the cache dir may not be its to write.
    (cd "$cache" && apt-get download -q docker-registry 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
    deb=$(ls "$cache"/docker-registry_2.8.*.deb 2>/dev/null | tail -n 1 || true)
    [[ -n $deb ]] || { echo "$0: apt-get download docker-registry gave no docker-registry 2.8 .deb in $cache" >&2; exit 1; }
fi
[[ -z $fetch_only ]] || exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/deb"
bin="$work/deb/usr/bin/docker-registry"
[[ -x $bin ]] || { echo "$0: $deb holds no usr/bin/docker-registry" >&2; exit 1; }

root="$work/rootfs"
mkdir -p "$root/bin" "$root/etc/docker/registry" "$root/var/lib/registry" "$root/tmp"
chmod 1777 "$root/tmp"
cp "$bin" "$root/bin/registry"
# The shared libraries (and the loader) the binary needs, at the paths it looks for them.
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done
cat >"$root/etc/docker/registry/config.yml" <<'EOF'
# The registry's config (berth's scripts/registry-image.sh). Its data is /var/lib/registry: bind
# it to the service's fs. Environment variables override any key (REGISTRY_HTTP_TLS_CERTIFICATE).
version: 0.1
log:
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
EOF
# Name resolution for the registry's own lookups (none needed on an address).
echo 'hosts: files dns' >"$root/etc/nsswitch.conf"

if [[ -n $tar_out ]]; then
    tar -C "$root" -cf "$tar_out" .
    exit 0
fi
tar -C "$root" -c . | "${SVC:-svc}" "$svc" docker import \
    --change 'ENTRYPOINT ["/bin/registry"]' \
    --change 'CMD ["serve", "/etc/docker/registry/config.yml"]' \
    --change 'EXPOSE 5000' \
    - "$image"
