package boot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// OSFS is the real FS.
type OSFS struct{}

// MkdirAll creates a directory and its parents.
func (OSFS) MkdirAll(path string, perm os.FileMode) error { return os.MkdirAll(path, perm) }

// Mount mounts. The pseudo filesystems are not stacked: a target that is
// already a mount point of the same type counts as mounted, as does EBUSY
// on a mount point, so the early mounts are idempotent.
func (OSFS) Mount(source, target, fstype string, flags uintptr, data string) error {
	if magic, ok := pseudoMagic[fstype]; ok && isMountPoint(target) {
		var fs unix.Statfs_t
		if unix.Statfs(target, &fs) == nil && fs.Type == magic {
			return nil
		}
	}
	err := unix.Mount(source, target, fstype, flags, data)
	if errors.Is(err, unix.EBUSY) && isMountPoint(target) {
		return nil
	}
	return err
}

// pseudoMagic maps the early mounts' types to their statfs magic.
var pseudoMagic = map[string]int64{
	"proc":     unix.PROC_SUPER_MAGIC,
	"sysfs":    unix.SYSFS_MAGIC,
	"devtmpfs": unix.TMPFS_MAGIC,
	"devpts":   unix.DEVPTS_SUPER_MAGIC,
	"tmpfs":    unix.TMPFS_MAGIC,
}

// WriteFile writes a file.
func (OSFS) WriteFile(path string, data []byte, perm os.FileMode) error {
	return os.WriteFile(path, data, perm)
}

// Open opens a device read-only.
func (OSFS) Open(path string) (ReaderAtCloser, error) { return os.Open(path) }

// isMountPoint reports whether p is on another device than its parent.
func isMountPoint(p string) bool {
	var st, parent unix.Stat_t
	if unix.Stat(p, &st) != nil || unix.Stat(p+"/..", &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// OpenConsole makes fds 0, 1 and 2 the console when the kernel could not
// open one for init (an initramfs without /dev/console: the Go runtime
// then put /dev/null there, or throws if that is missing too); devtmpfs
// has the console.
func OpenConsole() error {
	var st unix.Stat_t
	devNull := unix.Mkdev(1, 3)
	if unix.Fstat(1, &st) == nil && !(st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == devNull) {
		return nil
	}
	fd, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/console: %w", err)
	}
	for i := 0; i < 3; i++ {
		if err := unix.Dup2(fd, i); err != nil {
			return fmt.Errorf("dup /dev/console to fd %d: %w", i, err)
		}
	}
	if fd > 2 {
		unix.Close(fd)
	}
	return nil
}

// ReadCmdline reads /proc/cmdline.
func ReadCmdline() (string, error) {
	b, err := os.ReadFile("/proc/cmdline")
	return string(b), err
}

// Uptime reads the time since the kernel started from /proc/uptime.
func Uptime() (time.Duration, error) {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0, err
	}
	f, _, _ := strings.Cut(string(b), " ")
	s, err := strconv.ParseFloat(f, 64)
	if err != nil {
		return 0, fmt.Errorf("parse /proc/uptime: %w", err)
	}
	return time.Duration(s * float64(time.Second)), nil
}

// pollInterval is how often WaitForPath looks for a device node: devtmpfs
// creates nodes from the kernel, with no event a process could wait on
// without a uevent listener.
const pollInterval = 10 * time.Millisecond

// WaitForPath waits until path exists or ctx ends.
func WaitForPath(ctx context.Context, path string) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not appear: %w", path, ctx.Err())
		case <-t.C:
		}
	}
}
