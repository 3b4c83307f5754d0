// Package bzimage finds the compressed kernel inside an x86 bzImage, the
// job the kernel tree's scripts/extract-vmlinux does by scanning for magic
// numbers, done here by reading the boot protocol header instead.
//
// Booting the ELF vmlinux directly (qemu -kernel vmlinux, PVH entry) skips
// the in-guest decompression, which costs seconds under TCG.
package bzimage
