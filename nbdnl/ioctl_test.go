package nbdnl

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestSetupSteps(t *testing.T) {
	got := setupSteps(ConnectConfig{Size: 1 << 30, BlockSize: 4096, Timeout: 2500 * time.Millisecond, ServerFlags: 0x10b})
	want := []ioctlStep{
		{"NBD_SET_BLKSIZE", 0xab01, 4096},
		{"NBD_SET_SIZE", 0xab02, 1 << 30},
		{"NBD_SET_TIMEOUT", 0xab09, 3}, // 2.5 s rounded up
		{"NBD_SET_FLAGS", 0xab0a, 0x10b},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("setupSteps =\n%+v\nwant\n%+v", got, want)
	}
	if got := setupSteps(ConnectConfig{Size: 4096})[0]; got.arg != 1024 {
		t.Errorf("default block size = %d, want the kernel's 1024", got.arg)
	}
}

// TestAttachIoctlNotADevice runs the ioctl sequence against a regular
// file: the first ioctl fails with ENOTTY and the error names it.
func TestAttachIoctlNotADevice(t *testing.T) {
	s := fakeSys(t, map[string]string{"dev/nbd0": "", "sys/block/nbd0/size": "0\n"})
	_, err := s.AttachIoctl(t.Context(), ConnectConfig{Size: 4096, Sockets: pipeFiles(t, 1)})
	if !errors.Is(err, unix.ENOTTY) || !strings.Contains(err.Error(), "NBD_SET_BLKSIZE") ||
		!strings.Contains(err.Error(), filepath.Join(s.Dev, "nbd0")) {
		t.Errorf("AttachIoctl = %v, want ENOTTY from NBD_SET_BLKSIZE naming the device", err)
	}
	if err := DisconnectIoctl(filepath.Join(s.Dev, "nbd0")); !errors.Is(err, unix.ENOTTY) {
		t.Errorf("DisconnectIoctl = %v, want ENOTTY", err)
	}
	if _, err := s.AttachIoctl(t.Context(), ConnectConfig{Size: 4096}); err == nil {
		t.Error("AttachIoctl without sockets accepted")
	}
}
