#!/bin/busybox sh
# /sbin/init of the test root filesystem built by scripts/mkimages.sh.
#
# Kernel command line parameters it reads:
#   nbdtest.id=ID      echoed in the markers and written to /written-by-guest
#   nbdtest.mode=MODE  what to do (default write):
#     write  write /written-by-guest, sync, power off
#     loop   nbdtest.loops=N rounds (default 10) of write, sync, drop caches,
#            read back and compare a checksum; power off
#     check  print /written-by-guest as left by an earlier boot; power off
#     shell  an interactive shell on the console; power off when it exits
# Markers on the console (tests wait for them):
#   NBDBOOT-ROOT-INIT ok id=ID mode=MODE root=DEV FSTYPE OPTIONS
#   NBDBOOT-ROOT-WROTE id=ID value=VALUE        (mode write)
#   NBDBOOT-ROOT-LOOP N ok|FAIL                 (mode loop, each round)
#   NBDBOOT-ROOT-LOOP-DONE ok|FAIL              (mode loop)
#   NBDBOOT-ROOT-CHECK id=ID value=VALUE|none   (mode check)
#   NBDBOOT-ROOT-ERROR message
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mountpoint -q /run || mount -t tmpfs -o mode=0755 tmpfs /run

id=
mode=write
loops=10
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	nbdtest.id=*) id=${arg#nbdtest.id=} ;;
	nbdtest.mode=*) mode=${arg#nbdtest.mode=} ;;
	nbdtest.loops=*) loops=${arg#nbdtest.loops=} ;;
	esac
done
root=$(awk '$2 == "/" { r = $1 " " $3 " " $4 } END { print r }' /proc/mounts)
echo "NBDBOOT-ROOT-INIT ok id=$id mode=$mode root=$root"

# value is derived from the id only, so a test can predict it.
value=$(printf 'nbdboot:%s' "$id" | sha256sum | cut -c1-16)

mode_write() {
	if printf 'id=%s\nvalue=%s\n' "$id" "$value" >/written-by-guest && sync; then
		echo "NBDBOOT-ROOT-WROTE id=$id value=$value"
	else
		echo "NBDBOOT-ROOT-ERROR cannot write /written-by-guest"
	fi
}

mode_loop() {
	i=1 result=ok
	while [ "$i" -le "$loops" ]; do
		dd if=/dev/urandom of=/loop.bin bs=64k count=16 2>/dev/null
		want=$(sha256sum </loop.bin)
		sync
		echo 3 >/proc/sys/vm/drop_caches
		got=$(sha256sum </loop.bin)
		if [ "$got" = "$want" ]; then
			echo "NBDBOOT-ROOT-LOOP $i ok"
		else
			echo "NBDBOOT-ROOT-LOOP $i FAIL"
			result=FAIL
		fi
		i=$((i + 1))
	done
	rm -f /loop.bin
	sync
	echo "NBDBOOT-ROOT-LOOP-DONE $result"
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
