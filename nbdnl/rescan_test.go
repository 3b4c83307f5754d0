package nbdnl

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestRetryBusy(t *testing.T) {
	calls := 0
	err := retryBusy(t.Context(), 10*time.Second, func() error {
		calls++
		if calls < 3 {
			return os.NewSyscallError("ioctl", unix.EBUSY)
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Errorf("retryBusy = %v after %d calls; want nil after 3", err, calls)
	}

	calls = 0
	err = retryBusy(t.Context(), 10*time.Second, func() error { calls++; return unix.EINVAL })
	if !errors.Is(err, unix.EINVAL) || calls != 1 {
		t.Errorf("retryBusy = %v after %d calls; want EINVAL at once", err, calls)
	}

	err = retryBusy(t.Context(), 30*time.Millisecond, func() error { return unix.EBUSY })
	if !errors.Is(err, unix.EBUSY) {
		t.Errorf("retryBusy = %v, want EBUSY after the deadline", err)
	}
}

func TestRescanPartitionsNotABlockDevice(t *testing.T) {
	p := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := RescanPartitions(t.Context(), p)
	if !errors.Is(err, unix.ENOTTY) || !strings.Contains(err.Error(), p) {
		t.Errorf("RescanPartitions(regular file) = %v, want ENOTTY naming the file", err)
	}
	if err := RescanPartitions(t.Context(), filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("RescanPartitions(missing) = %v", err)
	}
}

// TestIoctlNumbers checks the request numbers against _IO(0xab, n), the
// encoding of include/uapi/linux/nbd.h.
func TestIoctlNumbers(t *testing.T) {
	io := func(typ, nr uintptr) uintptr { return typ<<8 | nr } // _IOC(_IOC_NONE, typ, nr, 0)
	tests := []struct {
		name string
		got  uintptr
		nr   uintptr
	}{
		{"NBD_SET_SOCK", ioctlSetSock, 0},
		{"NBD_SET_BLKSIZE", ioctlSetBlkSize, 1},
		{"NBD_SET_SIZE", ioctlSetSize, 2},
		{"NBD_DO_IT", ioctlDoIt, 3},
		{"NBD_CLEAR_SOCK", ioctlClearSock, 4},
		{"NBD_CLEAR_QUE", ioctlClearQue, 5},
		{"NBD_PRINT_DEBUG", ioctlPrintDebug, 6},
		{"NBD_SET_SIZE_BLOCKS", ioctlSetSizeBlocks, 7},
		{"NBD_DISCONNECT", ioctlDisconnect, 8},
		{"NBD_SET_TIMEOUT", ioctlSetTimeout, 9},
		{"NBD_SET_FLAGS", ioctlSetFlags, 10},
	}
	for _, tt := range tests {
		if want := io(0xab, tt.nr); tt.got != want {
			t.Errorf("%s = %#x, want %#x", tt.name, tt.got, want)
		}
	}
	if unix.BLKRRPART != io(0x12, 95) {
		t.Errorf("BLKRRPART = %#x, want _IO(0x12, 95)", unix.BLKRRPART)
	}
}
