#!/usr/bin/env bash
# Fetches Debian's current amd64 kernel package and prepares it for qemu:
#   OUT/vmlinux   the ELF kernel (boots directly through its PVH entry, which
#                 skips the seconds-long in-guest decompression under TCG)
#   OUT/bzImage   the kernel as shipped
#   OUT/root      the unpacked package with lib/modules/VERSION and depmod run
#   OUT/version   VERSION, e.g. 6.1.0-56-amd64
# The .deb is cached in CACHE (default OUT/../cache). Quiet and quick when up to date.
# With SUITE (e.g. bookworm-backports), the kernel comes from that suite of the
# Debian mirror in the apt configuration, through package lists of its own under
# CACHE (the system's apt configuration is not changed). When the mirror does not
# serve SUITE, OUT/unavailable says so and the script exits 0.
# Usage: scripts/fetch-kernel.sh OUT_DIR [SUITE]
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
out=${1:?usage: fetch-kernel.sh OUT_DIR [SUITE]}
suite=${2:-}
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
cache=${CACHE:-$(dirname "$out")/cache}
mkdir -p "$cache"

# apt options for SUITE: its own source list and package lists under CACHE.
aptopts=()
if [ -n "$suite" ]; then
	mirror=$(awk '/^URIs:/ {print $2}' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | grep -m1 '/debian/*$' || true)
	[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
	lists=$cache/apt-$suite
	mkdir -p "$lists/lists/partial"
	line="deb $mirror $suite main"
	[ "$(cat "$lists/sources.list" 2>/dev/null)" = "$line" ] || echo "$line" >"$lists/sources.list"
	aptopts=(-o "Dir::Etc::SourceList=$lists/sources.list" -o "Dir::Etc::SourceParts=-"
		-o "Dir::State::Lists=$lists/lists" -o "Dir::Cache=$lists")
	if [ ! -f "$out/version" ] || [ -n "$(find "$lists/sources.list" -newer "$out/version" 2>/dev/null)" ] ||
		[ -z "$(ls "$lists/lists" 2>/dev/null | grep -v partial)" ]; then
		if ! apt-get "${aptopts[@]}" update -qq >"$lists/update.log" 2>&1 ||
			[ -z "$(ls "$lists/lists" | grep Packages)" ]; then
			echo "$suite is not served by $mirror (apt-get update: $(tail -n1 "$lists/update.log"))" >"$out/unavailable"
			echo "fetch-kernel: $(cat "$out/unavailable"); no second kernel" >&2
			exit 0
		fi
	fi
	rm -f "$out/unavailable"
fi

# linux-image-amd64 depends on the current linux-image-X.Y.Z-N-amd64.
current() { apt-cache "${aptopts[@]}" depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
pkg=$(current)
if [ -z "$pkg" ] && [ -z "$suite" ]; then
	# A fresh system may have no package lists yet.
	SUDO=
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -qq >/dev/null 2>&1 || true
	pkg=$(current)
fi
if [ -z "$pkg" ]; then
	echo "fetch-kernel: apt-cache knows no linux-image-amd64 (run apt-get update)" >&2
	exit 1
fi
version=${pkg#linux-image-}

if [ -f "$out/version" ] && [ "$(cat "$out/version")" = "$version" ] &&
	[ -f "$out/vmlinux" ] && [ -f "$out/bzImage" ] && [ -f "$out/root/lib/modules/$version/modules.dep" ]; then
	exit 0
fi

deb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ]; then
	(cd "$cache" && apt-get "${aptopts[@]}" download -qq "$pkg" >/dev/null 2>&1) || {
		echo "fetch-kernel: apt-get download $pkg failed" >&2
		(cd "$cache" && apt-get "${aptopts[@]}" download "$pkg") >&2
		exit 1
	}
	deb=$(ls "$cache/${pkg}"_*.deb | head -n1)
fi

rm -rf "$out/root" "$out/version"
dpkg-deb -x "$deb" "$out/root"
depmod -b "$out/root" "$version"
cp "$out/root/boot/vmlinuz-$version" "$out/bzImage"
(cd "$repo" && go run ./internal/vm/cmd/extract-vmlinux -o "$out/vmlinux" "$out/bzImage")
echo "$version" >"$out/version"
