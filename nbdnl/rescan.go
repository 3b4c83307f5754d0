package nbdnl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// rescanTimeout bounds RescanPartitions' retries on EBUSY.
const rescanTimeout = 5 * time.Second

// RescanPartitions asks the kernel to re-read dev's partition table
// (BLKRRPART), retrying while the device is busy (EBUSY: a partition is
// open, or udev is probing it) for up to 5 seconds.
func RescanPartitions(ctx context.Context, dev string) error {
	f, err := os.Open(dev)
	if err != nil {
		return fmt.Errorf("rescan partitions of %s: %w", dev, err)
	}
	defer f.Close()
	err = retryBusy(ctx, rescanTimeout, func() error {
		return ioctl(f, unix.BLKRRPART, 0)
	})
	if err != nil {
		return fmt.Errorf("rescan partitions of %s: %w", dev, err)
	}
	return nil
}

// retryBusy calls op until it does not fail with EBUSY, every
// pollInterval, for at most timeout.
func retryBusy(ctx context.Context, timeout time.Duration, op func() error) error {
	var last error
	err := waitFor(ctx, timeout, func() (bool, error) {
		last = op()
		return !errors.Is(last, unix.EBUSY), last
	})
	if err != nil {
		return err
	}
	return last
}

// ioctl issues an ioctl whose argument is a plain integer.
func ioctl(f *os.File, req, arg uintptr) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, req, arg)
	}); err != nil {
		return err
	}
	if errno != 0 {
		return os.NewSyscallError("ioctl", errno)
	}
	return nil
}
