#!/usr/bin/env bash
# Builds the systemd distribution root the distro boot tests serve:
#   OUT/root/    Debian 12 (bookworm) minbase with systemd, udev and dbus,
#                made by debootstrap from the machine's configured apt mirror
#   OUT/.stamp   hash of the inputs (this script, suite, mirror, packages)
# The tests turn OUT/root into images with `nbdboot image`. debootstrap's
# downloads are cached in CACHE (default OUT/../cache/debootstrap). Needs root
# (debootstrap chroots). Quiet, and a no-op when the inputs are unchanged.
# Usage: scripts/mkdistro.sh OUT_DIR
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
out=${1:?usage: mkdistro.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
cache=${CACHE:-$(dirname "$out")/cache}/debootstrap
mkdir -p "$cache"
suite=bookworm
include=systemd,systemd-sysv,udev,dbus

# The mirror serving Debian's main archive in the apt configuration
# (deb822 .sources or one-line .list), e.g. http://deb.debian.org/debian.
mirror() {
	{
		awk '/^URIs:/ {print $2}' /etc/apt/sources.list.d/*.sources 2>/dev/null
		cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
			awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i !~ /^\[/) {print $i; break}}'
	} | grep -v -e security -e '^$' | grep -m1 '/debian/*$' || true
}
m=${MIRROR:-$(mirror)}
if [ -z "$m" ]; then
	echo "mkdistro: no Debian mirror in /etc/apt/sources.list{,.d} (set MIRROR)" >&2
	exit 1
fi

stamp=$(printf '%s\n' "$suite" "$m" "$include" | cat - "$here/mkdistro.sh" | sha256sum | cut -d' ' -f1)
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ] && [ -x "$out/root/lib/systemd/systemd" ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "mkdistro: debootstrap needs root" >&2
	exit 1
fi
if ! command -v debootstrap >/dev/null; then
	echo "mkdistro: debootstrap missing (make deps)" >&2
	exit 1
fi
rm -rf "$out/.stamp" "$out/root" "$out/.root"
log=$out/debootstrap.log
echo "mkdistro: debootstrap $suite from $m into $out/root (a few minutes; log: $log)" >&2
if ! debootstrap --variant=minbase --include="$include" --cache-dir="$cache" \
	"$suite" "$out/.root" "$m" >"$log" 2>&1; then
	echo "mkdistro: debootstrap failed:" >&2
	tail -n 20 "$log" >&2
	exit 1
fi
# Package caches and lists are not part of a seat's root.
rm -rf "$out/.root/var/cache/apt/archives/"*.deb "$out/.root/var/lib/apt/lists/"*
mv "$out/.root" "$out/root"
echo "$stamp" >"$out/.stamp"
