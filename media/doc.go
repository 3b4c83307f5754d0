// Package media builds boot media for machines that cannot boot nbdboot
// over PXE: a hybrid image that is both a USB stick image and a CD image
// (BIOS and UEFI), and a 1.44 MB floppy image that chains to HTTP.
//
// The hybrid image is an ISO 9660 filesystem holding the kernel, the
// initramfs and the command line, made by xorriso the way Debian's installer
// images are made:
//
//   - BIOS from a CD: El Torito no-emulation entry for ISOLINUX (Debian's
//     isolinux package) with a boot info table; its isolinux.cfg has the
//     command line and a short timeout prompt (and talks on the first serial
//     port as well as the screen).
//   - BIOS from a USB stick: syslinux's isohdpfx.bin as the MBR boot code
//     (isohybrid), which loads the same ISOLINUX from the disk.
//   - UEFI from a CD or a stick: a second El Torito entry (platform 0xEF) for
//     a small FAT image holding Debian's monolithic CD GRUB
//     (grub-efi-amd64-signed's gcdx64.efi) as EFI/BOOT/BOOTX64.EFI, also
//     given an MBR partition of type 0xEF so firmware finds it on a stick.
//     That GRUB finds the ISO filesystem by its /.disk/info file and reads
//     /boot/grub/grub.cfg: one menu entry with the command line.
//
// The floppy is a FAT12 image with SYSLINUX (Debian's syslinux installer)
// loading Debian's ipxe.lkrn with an iPXE script as its initrd (iPXE runs
// an initrd that is a script, so iPXE need not be rebuilt): DHCP, then the
// kernel and initramfs over HTTP from the URLs given when it was built,
// which may name the boot server found by DHCP as ${server} (the
// next-server of nbdserve's proxyDHCP answer, else of the DHCP server's).
//
// The same inputs give the same bytes: every timestamp is one fixed time
// (SOURCE_DATE_EPOCH for xorriso and mkfs.fat, fixed file times for mcopy,
// and the root directory entries that the syslinux installer stamps with
// the current time are rewritten), and the FAT volume serial numbers are
// derived from the inputs' digests.
//
// The go-diskfs library was considered for the filesystems: its ISO 9660
// writer stamps the volume descriptors and boot catalog with the current
// time, it writes no isohybrid MBR, and its FAT writer makes FAT32 only (a
// floppy is FAT12), so the images are made with Debian's tools instead.
package media
