package dmlog

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The device-mapper ioctls the guest needs (linux/dm-ioctl.h), so that
// it needs no dmsetup.
const (
	dmIoctlLen  = 312 // sizeof(struct dm_ioctl)
	dmSpecLen   = 40  // sizeof(struct dm_target_spec)
	dmNameLen   = 128
	dmDevCreate = 3
	dmDevRemove = 4
	dmDevSusp   = 6
	dmTableLoad = 9
	dmTargetMsg = 14
)

// dmIoctl runs command cmd with the struct dm_ioctl header for name
// followed by payload.
//
// struct dm_ioctl: 0 u32 version[3] (4, 0, 0), 12 u32 data_size, 16 u32
// data_start, 20 u32 target_count, 24 s32 open_count, 28 u32 flags, 32
// u32 event_nr, 36 u32 padding, 40 u64 dev, 48 char name[128], 176 char
// uuid[129], 305 char data[7].
func dmIoctl(cmd uintptr, name string, targets uint32, payload []byte) error {
	if len(name) >= dmNameLen {
		return fmt.Errorf("device-mapper name %q too long", name)
	}
	buf := make([]byte, dmIoctlLen+len(payload)+8)
	le := func(off int, v uint32) { *(*uint32)(unsafe.Pointer(&buf[off])) = v }
	le(0, 4)
	le(12, uint32(len(buf)))
	le(16, dmIoctlLen)
	le(20, targets)
	copy(buf[48:], name)
	copy(buf[dmIoctlLen:], payload)
	ctl, err := os.OpenFile("/dev/mapper/control", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer ctl.Close()
	req := uintptr(3)<<30 | uintptr(dmIoctlLen)<<16 | 0xfd<<8 | cmd
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, ctl.Fd(), req, uintptr(unsafe.Pointer(&buf[0]))); e != 0 {
		return fmt.Errorf("device-mapper ioctl %d on %s: %w", cmd, name, e)
	}
	return nil
}

// CreateLogWrites makes device-mapper device name: a log-writes target
// of sectors 512-byte sectors over dev ("MAJOR:MINOR"), logging to log.
func CreateLogWrites(name, dev, log string, sectors uint64) error {
	if err := dmIoctl(dmDevCreate, name, 0, nil); err != nil {
		return err
	}
	// struct dm_target_spec: 0 u64 sector_start, 8 u64 length, 16 s32
	// status, 20 u32 next, 24 char target_type[16]; the parameters
	// follow, NUL-terminated.
	params := dev + " " + log
	spec := make([]byte, dmSpecLen+(len(params)+1+7)&^7)
	*(*uint64)(unsafe.Pointer(&spec[8])) = sectors
	copy(spec[24:], "log-writes")
	copy(spec[dmSpecLen:], params)
	if err := dmIoctl(dmTableLoad, name, 1, spec); err != nil {
		return err
	}
	return dmIoctl(dmDevSusp, name, 0, nil) // without DM_SUSPEND_FLAG: resume
}

// Mark adds a mark to the log of log-writes device name.
func Mark(name, mark string) error {
	// struct dm_target_msg: 0 u64 sector, then the message.
	msg := make([]byte, 8+len("mark ")+len(mark)+1)
	copy(msg[8:], "mark "+mark)
	return dmIoctl(dmTargetMsg, name, 0, msg)
}

// Remove removes device-mapper device name.
func Remove(name string) error { return dmIoctl(dmDevRemove, name, 0, nil) }
