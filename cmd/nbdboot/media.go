//go:build !nbdboot_init

package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"

	"github.com/nbdboot/nbdboot/media"
)

const mediaUsage = `usage:
  nbdboot media usb|iso -o FILE [-kernel K] [-initramfs I] -cmdline "..." [-timeout D]
  nbdboot media floppy -o FILE [-server URL] [-cmdline "..."]

usb and iso make the same hybrid image: dd it to a USB stick or burn it to a
CD; it boots on BIOS and on UEFI. The floppy (1.44 MB) starts iPXE, which
does DHCP and then, with -cmdline, fetches the kernel and initramfs from
the server (nbdserve's URLs SERVER/boot/MAC/kernel and .../initramfs) and
boots them with that command line; without -cmdline it runs the script
nbdserve makes for the machine (SERVER/boot/MAC/script.ipxe).
${server} in the server URL or the command line is the boot server DHCP
named: the next-server of nbdserve's proxyDHCP answer, else of the DHCP
server's.
`

// runMedia builds a boot medium (media.Build) and says what went in.
func runMedia(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		fmt.Fprint(os.Stderr, mediaUsage)
		if len(args) == 0 {
			return fmt.Errorf("media: no medium given (usb, iso or floppy)")
		}
		return nil
	}
	kind, err := media.ParseKind(args[0])
	if err != nil {
		return fmt.Errorf("media: %w", err)
	}
	build := os.Getenv("NBDBOOT_BUILD")
	if build == "" {
		build = "build"
	}
	fs := flag.NewFlagSet("media "+args[0], flag.ContinueOnError)
	out := fs.String("o", "", "output image `file` (required); replaced by rename when complete")
	kernel := fs.String("kernel", filepath.Join(build, "kernel/bzImage"), "kernel `file` (bzImage) for usb/iso")
	initrd := fs.String("initramfs", filepath.Join(build, "initramfs.cpio.gz"), "nbdboot initramfs `file` for usb/iso")
	cmdline := fs.String("cmdline", "", "kernel `command line` (required for usb/iso), e.g. \"console=ttyS0 ip=dhcp nbdroot=nbd://SERVER/lab rw\"")
	timeout := fs.Duration("timeout", media.DefaultTimeout, "boot menu `wait` for usb/iso (0: boot at once)")
	server := fs.String("server", media.DefaultServer, "floppy: the HTTP server's `URL` (nbdserve's [pxe] HTTP service)")
	kernelURL := fs.String("kernel-url", "", "floppy: kernel `URL` (default SERVER"+media.MachinePath+"/kernel)")
	initrdURL := fs.String("initramfs-url", "", "floppy: initramfs `URL` (default SERVER"+media.MachinePath+"/initramfs)")
	scriptURL := fs.String("script-url", "", "floppy without -cmdline: iPXE script `URL` (default SERVER"+media.MachinePath+"/script.ipxe)")
	ipxe := fs.String("ipxe", media.DefaultLoaders.IPXE, "floppy: iPXE Linux kernel image `file`")
	grub := fs.String("grub-efi", media.DefaultLoaders.GrubEFI, "usb/iso: UEFI GRUB `file` (monolithic, CD-style)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), mediaUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("media %s: -o FILE is required", kind)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("media %s: unexpected argument %q", kind, fs.Arg(0))
	}
	c := media.Config{
		Kind: kind, Output: *out, Cmdline: *cmdline, Timeout: *timeout,
		Server: *server, KernelURL: *kernelURL, InitramfsURL: *initrdURL, ScriptURL: *scriptURL,
		Loaders: media.Loaders{IPXE: *ipxe, GrubEFI: *grub},
	}
	if kind.Hybrid() {
		c.Kernel, c.Initramfs = *kernel, *initrd
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := media.Build(ctx, c)
	if err != nil {
		return err
	}
	fmt.Print(res)
	return nil
}
