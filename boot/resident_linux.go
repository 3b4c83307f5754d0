package boot

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// lockMemory keeps the supervisor in RAM, so that a reconnect never
// waits for a page to come back from swap on the very device it repairs.
// MCL_ONFAULT locks pages as they are touched: without it the Go
// runtime's sparse reservations would be populated (tens of MiB). The
// executable's own mappings are locked whole, so that code not run yet
// (the reconnect path) is resident too: the initramfs it came from is
// tmpfs, whose pages can be swapped out.
// It returns how many bytes of the executable it locked.
func lockMemory() (uint64, error) {
	err := unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE | unix.MCL_ONFAULT)
	if errors.Is(err, unix.EINVAL) { // kernel before 4.4
		err = unix.Mlockall(unix.MCL_CURRENT | unix.MCL_FUTURE)
	}
	if err != nil {
		return 0, fmt.Errorf("mlockall: %w", err)
	}
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("read /proc/self/exe: %w", err)
	}
	return lockMappings(strings.TrimSuffix(exe, " (deleted)"))
}

// lockMappings mlocks (and so reads in) every mapping of file path and
// returns their total size.
func lockMappings(path string) (uint64, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var total uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/x (deleted)
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || strings.TrimSuffix(strings.Join(fields[5:], " "), " (deleted)") != path {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, e := unix.Syscall(unix.SYS_MLOCK, uintptr(start), uintptr(end-start), 0); e != 0 {
			return total, fmt.Errorf("mlock %s %s: %w", path, fields[0], e)
		}
		total += end - start
	}
	return total, sc.Err()
}

// probeSize is the watchdog read: one page, aligned for O_DIRECT with any
// logical block size the kernel allows.
const probeSize = 4096

// ReadBlock reads the first page of dev with O_DIRECT, so the read goes
// to the server rather than the page cache.
func ReadBlock(dev string) error {
	fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dev, err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 2*probeSize)
	off := int(-uintptr(unsafe.Pointer(&buf[0])) & (probeSize - 1))
	if _, err := unix.Pread(fd, buf[off:off+probeSize], 0); err != nil {
		return fmt.Errorf("read %s: %w", dev, err)
	}
	return nil
}
