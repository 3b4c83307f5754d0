#!/usr/bin/env bash
# Builds the root filesystem images the boot tests serve over NBD:
#   OUT/root.ext4       busybox root, ext4 with 4 KiB blocks, 64 MiB
#   OUT/root-part.img   the same filesystem as partition 1 (at 1 MiB) of an MBR disk
#   OUT/root.squashfs   the same tree as squashfs (read-only root under an overlay)
# /sbin/init is scripts/root-init.sh. No loop devices, no mounts, no root needed
# beyond owning the files. Quiet, and a no-op when the inputs are unchanged.
# Usage: scripts/mkimages.sh OUT_DIR
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
out=${1:?usage: mkimages.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
busybox=${BUSYBOX:-/bin/busybox}
mkdir -p "$out"

stamp=$(cat "$here/mkimages.sh" "$here/root-init.sh" "$busybox" | sha256sum | cut -d' ' -f1)
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ] &&
	[ -f "$out/root.ext4" ] && [ -f "$out/root-part.img" ] && [ -f "$out/root.squashfs" ]; then
	exit 0
fi
rm -f "$out/.stamp"

if ! "$busybox" --list-full >/dev/null 2>&1; then
	echo "mkimages: $busybox is not a busybox binary (install busybox-static)" >&2
	exit 1
fi

tree=$(mktemp -d "$out/.tree.XXXXXX")
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,etc,root,mnt}
chmod 1777 "$tree/tmp"
install -m 0755 "$busybox" "$tree/bin/busybox"
for app in $("$busybox" --list-full); do
	[ -e "$tree/$app" ] || ln -s /bin/busybox "$tree/$app"
done
install -m 0755 "$here/root-init.sh" "$tree/sbin/init"
echo nbdboot-test >"$tree/etc/hostname"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$tree/etc/passwd"
printf 'root:x:0:\n' >"$tree/etc/group"

# Fixed UUID, label and hash seed so the images are recognisable in tests.
uuid=6e626462-6f6f-7400-0000-000000000001
rm -f "$out/root.ext4"
mkfs.ext4 -q -F -b 4096 -L nbdroot -U "$uuid" -E root_owner=0:0,hash_seed=$uuid \
	-d "$tree" "$out/root.ext4" 64M >/dev/null

# 1 MiB of MBR and alignment, then the filesystem, exactly 64 MiB.
rm -f "$out/root-part.img"
truncate -s 65M "$out/root-part.img"
printf 'label: dos\nlabel-id: 0x6e626431\nstart=2048, size=131072, type=83\n' |
	sfdisk -q "$out/root-part.img" >/dev/null
dd if="$out/root.ext4" of="$out/root-part.img" bs=1M seek=1 conv=notrunc,sparse status=none

rm -f "$out/root.squashfs"
mksquashfs "$tree" "$out/root.squashfs" -quiet -noappend -all-root -no-progress \
	-mkfs-time 0 -all-time 0 >/dev/null

echo "$stamp" >"$out/.stamp"
