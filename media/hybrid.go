package media

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// isoVolumeID is the ISO 9660 volume identifier (shown as the CD's name).
const isoVolumeID = "NBDBOOT"

// efiSlack is free room in the EFI FAT image beyond GRUB (FAT overhead).
const efiSlack = 512 << 10

// buildHybrid writes the USB/CD image to out.
func buildHybrid(ctx context.Context, c Config, tmp, out string) (*Result, error) {
	l := c.Loaders
	for _, p := range []string{l.Isolinux, l.LDLinux, l.IsohybridMBR, l.GrubEFI} {
		if err := needFile(p); err != nil {
			return nil, err
		}
	}
	ins, err := hashInputs([][2]string{
		{"kernel", c.Kernel}, {"initramfs", c.Initramfs},
		{"isolinux", l.Isolinux}, {"ldlinux", l.LDLinux}, {"isohybrid-mbr", l.IsohybridMBR}, {"grub-efi", l.GrubEFI},
	})
	if err != nil {
		return nil, err
	}
	// The EFI system partition image: GRUB as the removable-media loader.
	esp := stage{dir: filepath.Join(tmp, "esp"), epoch: c.Epoch}
	if err := esp.copyFile("EFI/BOOT/BOOTX64.EFI", l.GrubEFI); err != nil {
		return nil, err
	}
	if err := esp.settle(); err != nil {
		return nil, err
	}
	grubSize := ins[5].Size
	iso := stage{dir: filepath.Join(tmp, "iso"), epoch: c.Epoch}
	if err := os.MkdirAll(iso.path("boot"), 0o755); err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	efi := fatImage{
		path:   iso.path(isoEFIImage),
		size:   roundUp(grubSize+efiSlack, 1<<20),
		label:  "NBDBOOT-EFI",
		serial: serial(c, ins, "efi"),
		epoch:  c.Epoch,
	}
	if err := efi.make(ctx, esp); err != nil {
		return nil, err
	}
	for _, f := range [][2]string{
		{isoKernel, c.Kernel}, {isoInitramfs, c.Initramfs},
		{isoIsolinux, l.Isolinux}, {"isolinux/ldlinux.c32", l.LDLinux},
	} {
		if err := iso.copyFile(f[0], f[1]); err != nil {
			return nil, err
		}
	}
	for _, f := range [][2]string{
		{isoLinuxCfg, isolinuxCfg(c.Cmdline, c.Timeout)},
		{isoGrubCfg, grubCfg(c.Cmdline, c.Timeout)},
		{isoDiskInfo, "nbdboot boot media\n"},
	} {
		if err := iso.writeFile(f[0], f[1]); err != nil {
			return nil, err
		}
	}
	if err := iso.settle(); err != nil {
		return nil, err
	}
	// xorriso's mkisofs emulation with the options of Debian's installer
	// images: -r gives every file owner root and sane modes (nothing of
	// the builder's user leaks in); SOURCE_DATE_EPOCH fixes every date
	// and the volume's UUID.
	args := []string{
		"-as", "mkisofs", "-quiet",
		"-o", out,
		"-V", isoVolumeID,
		"-r", "-J",
		"-b", isoIsolinux, "-c", isoCatalog,
		"-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
		"-isohybrid-mbr", l.IsohybridMBR,
		"-eltorito-alt-boot",
		"-e", isoEFIImage, "-no-emul-boot", "-isohybrid-gpt-basdat",
		iso.dir,
	}
	if err := tool(ctx, c.Epoch, "xorriso", args...); err != nil {
		return nil, err
	}
	return &Result{Inputs: ins}, nil
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }
