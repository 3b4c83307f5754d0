// Command guest is the /init of dmlog's test initramfs: it puts a
// device-mapper log-writes device over /dev/vda (an ext4 file system)
// logging to /dev/vdb, mounts it, runs the seeded overlay requests of
// dmlog.Ops on an overlay in /mnt/state (dmlog.seed= and dmlog.ops= on
// the kernel command line), marks the log after every Sync that
// returned, closes the overlay, unmounts, removes the device (its log is
// then complete) and powers off. It prints "DMLOG-DONE syncs=N" or
// "DMLOG-FAIL error".
package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nbdboot/nbdboot/cow"
	"github.com/nbdboot/nbdboot/internal/vm/dmlog"
	"github.com/nbdboot/nbdboot/kmod"
	"golang.org/x/sys/unix"
)

func main() {
	if err := run(); err != nil {
		fmt.Printf("DMLOG-FAIL %v\n", err)
	}
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}

func run() error {
	for _, m := range []struct{ src, dir, fs string }{{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"}} {
		os.MkdirAll(m.dir, 0o755)
		if err := unix.Mount(m.src, m.dir, m.fs, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s: %w", m.dir, err)
		}
	}
	seed, nops := uint64(1), 60
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	for _, a := range strings.Fields(string(cmdline)) {
		if v, ok := strings.CutPrefix(a, "dmlog.seed="); ok {
			seed, _ = strconv.ParseUint(v, 10, 64)
		}
		if v, ok := strings.CutPrefix(a, "dmlog.ops="); ok {
			nops, _ = strconv.Atoi(v)
		}
	}
	l, err := kmod.New(kmod.Options{})
	if err != nil {
		return err
	}
	for _, m := range []string{"virtio_pci", "virtio_blk", "crc32c_generic", "ext4", "dm_mod", "dm_log_writes"} {
		if err := l.Load(m, ""); err != nil {
			return fmt.Errorf("load %s: %w", m, err)
		}
	}
	dev, err := blockDev("vda")
	if err != nil {
		return err
	}
	logDev, err := blockDev("vdb")
	if err != nil {
		return err
	}
	size, err := os.ReadFile("/sys/class/block/vda/size")
	if err != nil {
		return err
	}
	sectors, err := strconv.ParseUint(strings.TrimSpace(string(size)), 10, 64)
	if err != nil {
		return err
	}
	if err := dmlog.CreateLogWrites("lw", dev, logDev, sectors); err != nil {
		return err
	}
	os.MkdirAll("/mnt", 0o755)
	if err := unix.Mount("/dev/dm-0", "/mnt", "ext4", 0, ""); err != nil {
		return fmt.Errorf("mount /dev/dm-0: %w", err)
	}
	if err := os.WriteFile("/base.img", dmlog.Base(), 0o600); err != nil {
		return err
	}
	bf, err := os.Open("/base.img")
	if err != nil {
		return err
	}
	ov, err := cow.Open("/mnt/state/disk/client", dmlog.BaseFile{File: bf}, cow.Options{})
	if err != nil {
		return err
	}
	syncs := 0
	for i, o := range dmlog.Ops(seed, nops) {
		switch o.Kind {
		case 's':
			err = ov.Sync()
			if err == nil {
				err = dmlog.Mark("lw", dmlog.MarkName(i))
				syncs++
			}
		case 'w':
			_, err = ov.WriteAt(bytes.Repeat([]byte{o.Fill}, int(o.N)), o.Off)
		case 't':
			err = ov.Trim(o.Off, o.N)
		case 'z':
			err = ov.Zero(o.Off, o.N, false, false)
		}
		if err != nil {
			return fmt.Errorf("request %d (%c): %w", i, o.Kind, err)
		}
	}
	// Close (one more Sync), unmount and remove the device, so that the
	// log holds everything up to the end; the points checked are the
	// marks and the prefixes between them.
	if err := ov.Close(); err != nil {
		return err
	}
	if err := unix.Unmount("/mnt", 0); err != nil {
		return fmt.Errorf("unmount: %w", err)
	}
	if err := dmlog.Remove("lw"); err != nil {
		return err
	}
	fmt.Printf("DMLOG-DONE syncs=%d\n", syncs)
	return nil
}

// blockDev returns "MAJOR:MINOR" of a block device from sysfs.
func blockDev(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join("/sys/class/block", name, "dev"))
	if err != nil {
		return "", fmt.Errorf("block device %s: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}
