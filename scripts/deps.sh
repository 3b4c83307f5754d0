#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the demo need, when
# they are missing. Quiet when nothing has to be done.
set -euo pipefail
pkgs=(
	qemu-system-x86 qemu-utils
	nbd-server nbd-client nbdkit
	libnbd-bin python3-libnbd
	fio
	busybox-static
	e2fsprogs squashfs-tools fdisk debootstrap
	kmod cpio zstd xz-utils lzop lz4 bzip2
	dnsmasq iproute2 socat
	ipxe-qemu
	ca-certificates
	xorriso mtools dosfstools isolinux syslinux syslinux-common
	grub-efi-amd64-signed ipxe ovmf
)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
