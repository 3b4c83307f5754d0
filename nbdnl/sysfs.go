package nbdnl

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Sys locates the nbd devices' sysfs directories and device nodes; tests
// point it at a temporary tree.
type Sys struct {
	Block string // "/sys/block"
	Dev   string // "/dev"
}

// DefaultSys is the running system's layout.
func DefaultSys() Sys { return Sys{Block: "/sys/block", Dev: "/dev"} }

func (s Sys) dir(index uint32) string { return filepath.Join(s.Block, fmt.Sprintf("nbd%d", index)) }

// Node returns the device node of /dev/nbdN under s.Dev.
func (s Sys) Node(index uint32) string { return filepath.Join(s.Dev, fmt.Sprintf("nbd%d", index)) }

// Devices lists the nbd devices the kernel has created, sorted.
func (s Sys) Devices() ([]uint32, error) {
	ents, err := os.ReadDir(s.Block)
	if err != nil {
		return nil, fmt.Errorf("list nbd devices: %w", err)
	}
	var out []uint32
	for _, e := range ents {
		if idx, err := DeviceIndex(e.Name()); err == nil {
			out = append(out, idx)
		}
	}
	slices.Sort(out)
	return out, nil
}

// readAttr reads a sysfs attribute of nbdN; ok is false when it does not
// exist (pid and backend exist only while the device is connected).
func (s Sys) readAttr(index uint32, name string) (val string, ok bool, err error) {
	p := filepath.Join(s.dir(index), name)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read %s: %w", p, err)
	}
	return strings.TrimSpace(string(b)), true, nil
}

// PID returns /sys/block/nbdN/pid: the process that connected the device
// (netlink) or runs NBD_DO_IT (ioctl). ok is false when the device is not
// connected.
func (s Sys) PID(index uint32) (pid int, ok bool, err error) {
	v, ok, err := s.readAttr(index, "pid")
	if err != nil || !ok {
		return 0, false, err
	}
	pid, err = strconv.Atoi(v)
	if err != nil {
		return 0, false, fmt.Errorf("%s/pid: %q is not a number", s.dir(index), v)
	}
	return pid, true, nil
}

// Backend returns /sys/block/nbdN/backend, the BackendID given at
// connect; ok is false when the file does not exist.
func (s Sys) Backend(index uint32) (backend string, ok bool, err error) {
	return s.readAttr(index, "backend")
}

// Size returns the device size in bytes (/sys/block/nbdN/size, in 512-byte
// sectors).
func (s Sys) Size(index uint32) (uint64, error) {
	v, ok, err := s.readAttr(index, "size")
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, fmt.Errorf("%s/size: no such device", s.dir(index))
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > 1<<54 {
		return 0, fmt.Errorf("%s/size: %q is not a sector count", s.dir(index), v)
	}
	return n * 512, nil
}

// FreeDevice returns the first device that is neither connected (no pid
// file) nor sized. It races with other attachers; the kernel refuses a
// second setup with EBUSY.
func (s Sys) FreeDevice() (uint32, error) {
	devs, err := s.Devices()
	if err != nil {
		return 0, err
	}
	if len(devs) == 0 {
		return 0, fmt.Errorf("no nbd devices in %s: is the nbd driver loaded?", s.Block)
	}
	for _, idx := range devs {
		_, busy, err := s.PID(idx)
		if err != nil || busy {
			continue
		}
		if size, err := s.Size(idx); err == nil && size == 0 {
			return idx, nil
		}
	}
	return 0, fmt.Errorf("no free nbd device among %d in %s (load nbd with a larger nbds_max?)", len(devs), s.Block)
}

// pollInterval is how often the wait helpers look again.
const pollInterval = 10 * time.Millisecond

// waitFor calls done every pollInterval until it reports true, ctx ends or
// timeout passes. done's last error explains a timeout.
func waitFor(ctx context.Context, timeout time.Duration, done func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		ok, err := done()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("%w: %w", ctx.Err(), err)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// WaitPartition waits up to timeout for partition part of nbdN: first for
// /sys/block/nbdN/nbdNpM (the kernel has read the partition table), then
// for its device node, and returns the node's path ("/dev/nbdNpM").
func (s Sys) WaitPartition(ctx context.Context, index uint32, part int, timeout time.Duration) (string, error) {
	if part < 1 {
		return "", fmt.Errorf("partition %d of %s: partitions count from 1", part, DevicePath(index))
	}
	name := fmt.Sprintf("nbd%dp%d", index, part)
	sys := filepath.Join(s.dir(index), name)
	node := filepath.Join(s.Dev, name)
	err := waitFor(ctx, timeout, func() (bool, error) {
		if _, err := os.Stat(sys); err != nil {
			return false, fmt.Errorf("%s does not exist: no such partition in the table?", sys)
		}
		if _, err := os.Stat(node); err != nil {
			return false, fmt.Errorf("%s exists but %s does not: is devtmpfs mounted on %s?", sys, node, s.Dev)
		}
		return true, nil
	})
	if err != nil {
		return "", fmt.Errorf("wait for partition %s: %w", node, err)
	}
	return node, nil
}

// WaitConnected waits up to timeout for /sys/block/nbdN/pid, which the
// kernel creates once the device is started.
func (s Sys) WaitConnected(ctx context.Context, index uint32, timeout time.Duration) error {
	err := waitFor(ctx, timeout, func() (bool, error) {
		_, ok, err := s.PID(index)
		return ok, err
	})
	if err != nil {
		return fmt.Errorf("wait for %s to start: %w", DevicePath(index), err)
	}
	return nil
}
