package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"
)

// switchRoot mounts the ext4 filesystem on dev (a virtio disk, "vda" or
// "vda1") and runs its /sbin/init in place of this program.
func switchRoot(dev string) error {
	if err := loadModules("virtio_pci", "virtio_blk", "crc32c_generic", "ext4"); err != nil {
		return err
	}
	node, err := mknodBlock(dev)
	if err != nil {
		return err
	}
	if err := os.MkdirAll("/newroot", 0o755); err != nil {
		return err
	}
	if err := unix.Mount(node, "/newroot", "ext4", 0, ""); err != nil {
		return fmt.Errorf("mount %s: %w", node, err)
	}
	unix.Unmount("/proc", unix.MNT_DETACH)
	// Does not return on success.
	return mount.SwitchRoot("/newroot", "/sbin/init")
}

// mknodBlock creates /dev/NAME from the numbers in sysfs. The disk and its
// partitions are registered when the driver's probe returns, so there is
// nothing to wait for.
func mknodBlock(name string) (string, error) {
	if err := os.MkdirAll("/sys", 0o755); err != nil {
		return "", err
	}
	if err := unix.Mount("sysfs", "/sys", "sysfs", 0, ""); err != nil && err != unix.EBUSY {
		return "", fmt.Errorf("mount /sys: %w", err)
	}
	b, err := os.ReadFile(filepath.Join("/sys/class/block", name, "dev"))
	if err != nil {
		return "", fmt.Errorf("block device %s: %w", name, err)
	}
	var major, minor uint32
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d:%d", &major, &minor); err != nil {
		return "", fmt.Errorf("block device %s: dev %q: %w", name, b, err)
	}
	node := "/dev/" + name
	if err := unix.Mknod(node, unix.S_IFBLK|0o600, int(unix.Mkdev(major, minor))); err != nil && err != unix.EEXIST {
		return "", fmt.Errorf("mknod %s: %w", node, err)
	}
	return node, nil
}
