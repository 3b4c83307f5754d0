package media

import (
	"fmt"
	"os"
)

// Loaders are the boot loader files taken from Debian's packages.
type Loaders struct {
	Isolinux     string // isolinux: ISOLINUX for CDs
	LDLinux      string // syslinux-common: ISOLINUX's second stage (ldlinux.c32)
	IsohybridMBR string // isolinux: MBR boot code that starts ISOLINUX from a disk
	GrubEFI      string // grub-efi-amd64-signed: GRUB for CDs and sticks, all modules built in
	IPXE         string // ipxe: iPXE as a Linux kernel image
}

// DefaultLoaders are the files' paths in Debian 12.
var DefaultLoaders = Loaders{
	Isolinux:     "/usr/lib/ISOLINUX/isolinux.bin",
	LDLinux:      "/usr/lib/syslinux/modules/bios/ldlinux.c32",
	IsohybridMBR: "/usr/lib/ISOLINUX/isohdpfx.bin",
	GrubEFI:      "/usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed",
	IPXE:         "/usr/lib/ipxe/ipxe.lkrn",
}

// loaderPackages name the Debian package of each file, for the error.
var loaderPackages = map[string]string{
	"isolinux.bin":      "isolinux",
	"ldlinux.c32":       "syslinux-common",
	"isohdpfx.bin":      "isolinux",
	"gcdx64.efi.signed": "grub-efi-amd64-signed",
	"ipxe.lkrn":         "ipxe",
}

func (l Loaders) withDefaults() Loaders {
	d := DefaultLoaders
	for _, p := range []struct{ v, def *string }{
		{&l.Isolinux, &d.Isolinux}, {&l.LDLinux, &d.LDLinux},
		{&l.IsohybridMBR, &d.IsohybridMBR}, {&l.GrubEFI, &d.GrubEFI}, {&l.IPXE, &d.IPXE},
	} {
		if *p.v == "" {
			*p.v = *p.def
		}
	}
	return l
}

// needFile checks that a loader file is there, naming its Debian package
// when it is not.
func needFile(p string) error {
	if _, err := os.Stat(p); err != nil {
		for base, pkg := range loaderPackages {
			if len(p) >= len(base) && p[len(p)-len(base):] == base {
				return fmt.Errorf("boot loader file: %w (install Debian's %s package)", err, pkg)
			}
		}
		return fmt.Errorf("boot loader file: %w", err)
	}
	return nil
}
