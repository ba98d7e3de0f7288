#!/usr/bin/env bash
# Build the berth Debian package from this workspace: scripts/package.sh [--debug] [--out DIR]
#
# A plain dpkg-deb script rather than cargo-deb: the package spans several crates (svc, svcd,
# and berth-collector when its crate exists), its man pages and completions are made by running
# the built binaries (`--generate-man`, `--completions`), and dpkg-deb is part of dpkg, on every
# Debian machine, where cargo-deb would be one more tool to build from crates.io.
#
# --debug packages the debug build (quick to build, used by the tests); the default is release.
# The binaries are stripped either way. Prints the path of the .deb on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release out=target/deb
while (($#)); do
    case $1 in
    --debug) profile=debug ;;
    --release) profile=release ;;
    --out) out=$2; shift ;;
    *) echo "usage: scripts/package.sh [--debug|--release] [--out DIR]" >&2; exit 2 ;;
    esac
    shift
done
for tool in dpkg dpkg-deb strip objdump gzip md5sum; do
    command -v "$tool" >/dev/null || { echo "package.sh: $tool is missing (scripts/deps.sh)" >&2; exit 1; }
done

bins=(svc svcd)
units=(svcd.service)
if [[ -f crates/berth-collector/Cargo.toml ]]; then
    bins+=(berth-collector)
    [[ -f systemd/berth-collector.service ]] && units+=(berth-collector.service)
fi

build=("${CARGO:-cargo}" build --locked)
[[ $profile == release ]] && build+=(--release)
for b in "${bins[@]}"; do build+=(--bin "$b"); done
echo "package.sh: ${build[*]}" >&2
"${build[@]}" >&2
target=${CARGO_TARGET_DIR:-target}/$profile

# The version: the workspace's (Cargo.toml), as the binaries report it.
version=$("$target/svc" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
[[ -n $version && -n $arch ]] || { echo "package.sh: cannot tell the version or the architecture" >&2; exit 1; }

mkdir -p "$out"
stage=$(mktemp -d "$out/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/berth

# Binaries.
install -d "$root/usr/bin"
for b in "${bins[@]}"; do
    install -m 0755 "$target/$b" "$root/usr/bin/$b"
    strip --strip-unneeded "$root/usr/bin/$b"
done

# systemd units, pointing at the packaged binaries.
install -d "$root/lib/systemd/system"
for u in "${units[@]}"; do
    sed -e 's|/usr/local/bin/|/usr/bin/|g' "systemd/$u" >"$root/lib/systemd/system/$u"
    chmod 0644 "$root/lib/systemd/system/$u"
done

# Config (conffiles) and state.
install -d "$root/etc/berth/services" "$root/var/lib/berth"
[[ " ${bins[*]} " == *" berth-collector "* ]] && install -d "$root/var/lib/berth-collector"
install -m 0644 packaging/node.toml "$root/etc/berth/node.toml"
# The collector's unit reads /etc/berth/collector.toml: a commented example, so the unit's file exists.
[[ " ${bins[*]} " == *" berth-collector "* ]] && install -m 0644 packaging/collector.toml "$root/etc/berth/collector.toml"

# Documentation.
doc=$root/usr/share/doc/berth
install -d "$doc/examples"
install -m 0644 docs/*.md docs/*.png "$doc/"
# The README beside the docs: its links to docs/X made relative to this directory (X).
sed -e 's|](docs/|](|g' README.md >"$doc/README.md"
install -m 0644 packaging/copyright "$doc/copyright"
install -m 0644 etc/examples/* "$doc/examples/"

# Man pages and completions, from the binaries' clap definitions.
man=$stage/man
mkdir -p "$man"
for b in "${bins[@]}"; do
    if ! "$root/usr/bin/$b" --help | grep -q -- --generate-man; then
        echo "package.sh: $b has no --generate-man/--completions: flatten berth_manual::ManualArgs into its Cli (see crates/berth-manual)" >&2
        exit 1
    fi
    "$root/usr/bin/$b" --generate-man "$man"
done
for page in "$man"/*; do
    section=${page##*.}
    install -d "$root/usr/share/man/man$section"
    gzip -9n <"$page" >"$root/usr/share/man/man$section/$(basename "$page").gz"
    chmod 0644 "$root/usr/share/man/man$section/$(basename "$page").gz"
done
install -d "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
    "$root/usr/share/fish/vendor_completions.d"
for b in "${bins[@]}"; do
    "$root/usr/bin/$b" --completions bash >"$root/usr/share/bash-completion/completions/$b"
    "$root/usr/bin/$b" --completions zsh >"$root/usr/share/zsh/vendor-completions/_$b"
    "$root/usr/bin/$b" --completions fish >"$root/usr/share/fish/vendor_completions.d/$b.fish"
done
find "$root/usr/share" -type f -exec chmod 0644 {} +

# Control files.
install -d "$root/DEBIAN"
# libc6: the newest GLIBC symbol version the binaries use.
glibc=$(objdump -T "$root"/usr/bin/* | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: berth
Version: $version
Architecture: $arch
Maintainer: berth developers <berth@example.invalid>
Installed-Size: $size
Depends: libc6 (>= $glibc), libgcc-s1, e2fsprogs, lvm2
Recommends: docker.io
Suggests: etcd-client
Section: admin
Priority: optional
Homepage: https://example.invalid/berth
Description: resource orchestration agent (OpenSVC's service model)
 berth starts, stops and watches services made of IP addresses, LVM volume
 groups, filesystems and docker containers (a private dockerd per service), in
 order, with rollback, and prints their status as OpenSVC does.
 .
 svc is the command line; svcd the agent daemon (status cache, monitor
 restarts, autostart, HTTP endpoint). svcd is installed disabled.
CONTROL
(cd "$root" && find etc -type f -printf '/%p\n' | sort) >"$root/DEBIAN/conffiles"
unit_names=${units[*]}
for s in postinst prerm postrm; do
    sed -e "s|#UNITS#|$unit_names|" "packaging/$s" >"$root/DEBIAN/$s"
    chmod 0755 "$root/DEBIAN/$s"
done
# md5sums of every file but the conffiles (dpkg keeps their sums itself), as dh_md5sums writes it.
(cd "$root" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' |
    sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"

compress=(-Zxz)
[[ $profile == debug ]] && compress=(-Zgzip -z1)
deb=$out/berth_${version}_${arch}.deb
dpkg-deb --root-owner-group "${compress[@]}" --build "$root" "$deb" >&2
echo "$deb"
