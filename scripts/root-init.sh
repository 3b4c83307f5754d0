#!/bin/busybox sh
# /sbin/init of the test root filesystem built by scripts/mkimages.sh.
#
# Kernel command line parameters it reads:
#   nbdtest.id=ID      echoed in the markers and written to /written-by-guest
#   nbdtest.mode=MODE  what to do (default write):
#     write  write /written-by-guest, sync, power off
#     loop   nbdtest.loops=N rounds (default 10) of write, fsync, drop caches,
#            read back and compare a checksum; power off. nbdtest.loops=0
#            loops until a line arrives on the console (a test acting in the
#            middle: it types "stop"). At the end it checks that / is still
#            rw and that the kernel logged no I/O or filesystem error.
#            nbdtest.readdev=DEV also reads DEV's first MiB with O_DIRECT each
#            round and compares it with the first round's (a read-only device
#            under an overlay, whose file I/O would stay in memory).
#            nbdtest.killall=1 first sends TERM, HUP and INT to every process,
#            as a shutdown does (the supervisor must survive it).
#     check  print /written-by-guest as left by an earlier boot; power off
#     shell  an interactive shell on the console; power off when it exits
# Markers on the console (tests wait for them):
#   NBDBOOT-ROOT-INIT ok id=ID mode=MODE root=DEV FSTYPE OPTIONS
#   NBDBOOT-ROOT-WROTE id=ID value=VALUE        (mode write)
#   NBDBOOT-ROOT-LOOP N ok|FAIL [why]           (mode loop, each round)
#   NBDBOOT-ROOT-LOOP-DONE ok|FAIL rounds=N errors=E root=rw|ro   (mode loop)
#   NBDBOOT-ROOT-DMESG line                     (mode loop, kernel errors)
#   NBDBOOT-ROOT-SUPERVISOR pid=PID exe=EXE rss=KB cmdline=ARGS  (mode loop)
#   NBDBOOT-ROOT-CHECK id=ID value=VALUE|none   (mode check)
#   NBDBOOT-ROOT-ERROR message
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
# nbdboot moves /proc, /sys, /dev and /run into the new root; mount
# only what is missing.
[ -e /proc/self ] || mount -t proc proc /proc
grep -q '^[^ ]* /sys ' /proc/mounts || mount -t sysfs sysfs /sys
grep -q '^[^ ]* /dev ' /proc/mounts || mount -t devtmpfs devtmpfs /dev
grep -q '^[^ ]* /run ' /proc/mounts || mount -t tmpfs -o mode=0755 tmpfs /run

id=
readdev=
killall=
mode=write
loops=10
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	nbdtest.id=*) id=${arg#nbdtest.id=} ;;
	nbdtest.mode=*) mode=${arg#nbdtest.mode=} ;;
	nbdtest.loops=*) loops=${arg#nbdtest.loops=} ;;
	nbdtest.readdev=*) readdev=${arg#nbdtest.readdev=} ;;
	nbdtest.killall=*) killall=${arg#nbdtest.killall=} ;;
	esac
done
root=$(awk '$2 == "/" { r = $1 " " $3 " " $4 } END { print r }' /proc/mounts)
echo "NBDBOOT-ROOT-INIT ok id=$id mode=$mode root=$root"

# value is derived from the id only, so a test can predict it.
value=$(printf 'nbdboot:%s' "$id" | sha256sum | cut -c1-16)

mode_write() {
	want=$(printf 'id=%s\nvalue=%s\n' "$id" "$value")
	if ! { printf '%s\n' "$want" >/written-by-guest && sync; }; then
		echo "NBDBOOT-ROOT-ERROR cannot write /written-by-guest"
		return
	fi
	# Read it back from the device, not from the page cache.
	echo 3 >/proc/sys/vm/drop_caches
	if [ "$(cat /written-by-guest)" = "$want" ]; then
		echo "NBDBOOT-ROOT-WROTE id=$id value=$value"
	else
		echo "NBDBOOT-ROOT-ERROR /written-by-guest reads back differently"
	fi
}

# loop_round N: one round; prints its marker, returns 1 on an error.
loop_round() {
	why=
	if ! dd if=/dev/urandom of=/loop.bin bs=64k count=16 2>/dev/null; then
		why="write failed"
	elif ! want=$(sha256sum </loop.bin); then
		why="checksum of the written file failed"
	elif ! sync /loop.bin; then
		why="fsync failed"
	else
		echo 3 >/proc/sys/vm/drop_caches
		if ! got=$(sha256sum </loop.bin); then
			why="read back failed"
		elif [ "$got" != "$want" ]; then
			why="checksum mismatch"
		fi
	fi
	if [ -z "$why" ] && [ -n "$readdev" ]; then
		if ! dd if="$readdev" of=/run/readdev.bin bs=64k count=16 iflag=direct 2>/dev/null ||
			! sum=$(sha256sum </run/readdev.bin); then
			why="direct read of $readdev failed"
		elif [ -z "$devsum" ]; then
			devsum=$sum
		elif [ "$sum" != "$devsum" ]; then
			why="$readdev read back different data"
		fi
	fi
	if [ -n "$why" ]; then
		echo "NBDBOOT-ROOT-LOOP $1 FAIL $why"
		return 1
	fi
	echo "NBDBOOT-ROOT-LOOP $1 ok"
}

# kernel_errors prints what the kernel logged about failed I/O or a
# filesystem gone read-only (nbdboot's own lines excluded).
kernel_errors() {
	dmesg | grep -i -e 'I/O error' -e 'EXT4-fs error' -e 'Aborting journal' \
		-e 'remounting filesystem read-only' -e 'read-only file system' | grep -v 'nbdboot:'
}

# supervisors prints nbdboot's resident supervisors: argv[0] '@nbdboot'.
supervisors() {
	for p in /proc/[0-9]*; do
		c=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)
		case "$c" in
		@nbdboot*)
			rss=$(awk '$1 == "VmRSS:" { print $2 }' "$p/status")
			echo "NBDBOOT-ROOT-SUPERVISOR pid=${p#/proc/} exe=$(readlink "$p/exe" | tr ' ' _) rss=$rss cmdline=$c"
			;;
		esac
	done
}

mode_loop() {
	if [ "$killall" = 1 ]; then
		kill -TERM -1; kill -HUP -1; kill -INT -1
	fi
	supervisors
	i=1 errors=0 devsum=
	stop=/run/nbdtest-stop
	rm -f "$stop"
	if [ "$loops" = 0 ]; then
		{ read -r _ && : >"$stop"; } </dev/console &
	fi
	while :; do
		if [ "$loops" = 0 ]; then
			[ -e "$stop" ] && break
		elif [ "$i" -gt "$loops" ]; then
			break
		fi
		loop_round "$i" || errors=$((errors + 1))
		i=$((i + 1))
	done
	rm -f /loop.bin
	sync || errors=$((errors + 1))
	opts=$(awk '$2 == "/" { o = $4 } END { print o }' /proc/mounts)
	rootmode=${opts%%,*}
	kerr=$(kernel_errors)
	result=ok
	if [ "$errors" != 0 ] || [ "$rootmode" != rw ] || [ -n "$kerr" ]; then
		result=FAIL
		echo "$kerr" | while read -r l; do [ -n "$l" ] && echo "NBDBOOT-ROOT-DMESG $l"; done
	fi
	echo "NBDBOOT-ROOT-LOOP-DONE $result rounds=$((i - 1)) errors=$errors root=$rootmode"
}

mode_check() {
	if [ -f /written-by-guest ]; then
		echo "NBDBOOT-ROOT-CHECK $(tr '\n' ' ' </written-by-guest)"
	else
		echo "NBDBOOT-ROOT-CHECK none"
	fi
}

case "$mode" in
write) mode_write ;;
loop) mode_loop ;;
check) mode_check ;;
shell) setsid cttyhack sh ;;
*) echo "NBDBOOT-ROOT-ERROR unknown nbdtest.mode=$mode" ;;
esac
sync
poweroff -f
