#!/usr/bin/env bash
# Boots a diskless qemu guest from nbdserve and shows its console live.
#
# nbdserve serves a fresh copy of the demo root image on 127.0.0.1; qemu
# (-accel tcg) boots build/kernel/vmlinux with nbdboot's initramfs on user
# networking with restrict=on, the guest reaching the server through a
# guestfwd relay (socat) at 10.0.2.100:10809: nothing leaves this machine.
# The guest gets an address by DHCP, attaches its root over NBD, switches
# into it, writes a file and powers off.
#
# Exits 0 once the guest reached its root's init and powered off (and the
# file it wrote is in the server's image); otherwise non-zero with the
# reason and the end of the server's log. Prints the timings at the end.
#
# Usage: scripts/demo.sh            (make demo builds the inputs first)
# Environment: NBDBOOT_BUILD (default ./build), DEMO_TIMEOUT seconds
# (default 300), DEMO_CMDLINE extra kernel parameters, QEMU.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${NBDBOOT_BUILD:-$repo/build}
timeout_s=${DEMO_TIMEOUT:-300}
qemu=${QEMU:-qemu-system-x86_64}
kernel=$build/kernel/vmlinux
initramfs=$build/initramfs.cpio.gz
image=$build/images/root.ext4
nbdserve=$build/bin/nbdserve
guest_server=10.0.2.100:10809
id=demo-$(date +%s)

say() { printf 'demo: %s\n' "$*"; }
die() {
	say "FAILED: $*" >&2
	if [ -n "${work:-}" ] && [ -s "$work/nbdserve.log" ]; then
		say "nbdserve log (last 20 lines):" >&2
		tail -n 20 "$work/nbdserve.log" | sed 's/^/  /' >&2
	fi
	exit 1
}

for f in "$kernel" "$initramfs" "$image" "$nbdserve"; do
	[ -f "$f" ] || die "$f missing (run make demo, which builds it)"
done
for tool in "$qemu" socat debugfs; do
	command -v "$tool" >/dev/null || die "$tool not installed (run make deps)"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/nbdboot-demo.XXXXXX")
server_pid= qemu_pid= log_pid=
cleanup() {
	# Only the processes this script started, by their ids.
	if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
		kill "$qemu_pid" 2>/dev/null || true
		wait "$qemu_pid" 2>/dev/null || true
	fi
	if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# The guest writes to its root: serve a copy, never the build's image.
cp --sparse=always --reflink=auto "$image" "$work/root.ext4"

# nbdserve on any free loopback port. Its log comes through a fifo: the
# script reads lines until the one naming the address (with a deadline),
# then a cat copies the rest to nbdserve.log.
mkfifo "$work/nbdserve.fifo"
"$nbdserve" -listen 127.0.0.1:0 "root=$work/root.ext4,desc=nbdboot demo root" 2>"$work/nbdserve.fifo" &
server_pid=$!
exec 3<"$work/nbdserve.fifo"
addr=
while IFS= read -r -t 10 -u 3 line; do
	printf '%s\n' "$line" >>"$work/nbdserve.log"
	case $line in
	*msg=serving*)
		addr=$(sed -n 's/.*addr=\([0-9.]*:[0-9]*\).*/\1/p' <<<"$line")
		break
		;;
	esac
done
cat <&3 >>"$work/nbdserve.log" &
log_pid=$!
exec 3<&-
[ -n "$addr" ] || die "nbdserve did not start listening within 10s"
say "nbdserve: export root = copy of $image on $addr"

cmdline="console=ttyS0 panic=-1 quiet ip=dhcp nbdroot=nbd://$guest_server/root rw nbdtest.id=$id ${DEMO_CMDLINE:-}"
say "qemu: $kernel, $(basename "$initramfs") ($(stat -L -c %s "$initramfs") bytes)"
say "kernel command line: $cmdline"
say "console follows ---------------------------------------------------------"

# qemu's console comes through a fifo to the terminal and console.log;
# the time the root's init marker shows up is recorded. A failed boot
# ends in nbdboot's rescue shell: qemu is stopped there, the reason shown.
# The relay runs with -lf /dev/null: slirp makes the guest's connection
# the command's stderr too, so socat must not log into it.
mkfifo "$work/console.fifo"
start=$(date +%s.%N)
timeout --kill-after=5 "$timeout_s" "$qemu" -accel tcg -M pc -m 256M \
	-nodefaults -nographic -no-reboot -serial stdio -monitor none \
	-kernel "$kernel" -initrd "$initramfs" -append "$cmdline" \
	-netdev "user,id=net0,restrict=on,guestfwd=tcp:$guest_server-cmd:socat -lf /dev/null - TCP:$addr" \
	-device virtio-net-pci,netdev=net0,romfile= </dev/null >"$work/console.fifo" 2>"$work/qemu.err" &
qemu_pid=$!
rescue=
while IFS= read -r line; do
	line=${line%$'\r'}
	printf '%s\n' "$line"
	printf '%s\n' "$line" >>"$work/console.log"
	case $line in
	*NBDBOOT-ROOT-INIT*) date +%s.%N >"$work/root-init.at" ;;
	*"nbdboot: ["*"] rescue: starting a shell"*)
		rescue=1
		kill "$qemu_pid" 2>/dev/null || true
		;;
	esac
done < <(sed -u 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g' "$work/console.fifo") # no terminal resets from the firmware
status=0
wait "$qemu_pid" || status=$?
qemu_pid=
say "console ends ------------------------------------------------------------"

console=$work/console.log
touch "$console"
if [ -n "$rescue" ]; then
	die "the boot failed: $(grep -m1 'FAILED:' "$console" | sed 's/.*FAILED: //')"
fi
[ "$status" -eq 124 ] && die "no poweroff within ${timeout_s}s (qemu killed)"
[ "$status" -eq 0 ] || die "qemu exited with status $status: $(tr '\n' ' ' <"$work/qemu.err")"
if grep -q 'Kernel panic' "$console"; then
	die "the guest kernel panicked: $(grep -m1 'Kernel panic' "$console")"
fi
grep -q "NBDBOOT-ROOT-INIT ok id=$id" "$console" ||
	die "the guest never reached its root's init: $(grep -m1 'FAILED:' "$console" || echo 'see the console above')"
grep -q "NBDBOOT-ROOT-WROTE id=$id" "$console" || die "the guest's root did not report its write"

# Stop the server, then read what the guest wrote from the image itself.
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=
wait "$log_pid" 2>/dev/null || true
written=$(debugfs -R "cat /written-by-guest" "$work/root.ext4" 2>/dev/null | sed -n 's/^id=//p')
[ "$written" = "$id" ] || die "the server's image does not hold the guest's write (found id '${written}', want '$id')"

# Timings (printed, not judged).
init_to_switch=$(sed -n 's/.* \([0-9.]*\)s from \/init to switch_root.*/\1/p' "$console" | head -n1)
uptime=$(sed -n 's/.*switch_root, kernel uptime \([0-9.]*\)s.*/\1/p' "$console" | head -n1)
qemu_to_root=$(awk -v a="$start" -v b="$(cat "$work/root-init.at")" 'BEGIN { printf "%.3f", b - a }')
conns=$(grep -c 'msg=connected' "$work/nbdserve.log" || true)
say "OK: the guest booted its root over NBD, wrote /written-by-guest (in the server's image) and powered off"
say "initramfs:                 $(awk -v s="$(stat -L -c %s "$initramfs")" 'BEGIN { printf "%.2f MiB", s / 1048576 }')"
say "/init to switch_root:      ${init_to_switch:-?}s (kernel uptime ${uptime:-?}s at switch_root)"
say "qemu start to root's init: ${qemu_to_root}s"
say "server connections:        $conns"
