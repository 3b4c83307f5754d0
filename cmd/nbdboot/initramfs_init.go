//go:build nbdboot_init

package main

import "errors"

// runInitramfs is left out of the nbdboot built for the initramfs, which
// has neither the Go toolchain nor the sources the builder needs.
func runInitramfs(args []string) error {
	return errors.New("initramfs: not available in the nbdboot built into an initramfs; run it from a checkout of the repository")
}

// runImage is left out too: it needs mkfs.ext4 or mksquashfs and a tree.
func runImage(args []string) error {
	return errors.New("image: not available in the nbdboot built into an initramfs")
}

// runMedia is left out too: it needs xorriso, mtools and boot loaders.
func runMedia(args []string) error {
	return errors.New("media: not available in the nbdboot built into an initramfs")
}
