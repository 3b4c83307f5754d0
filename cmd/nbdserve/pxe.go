package main

import (
	"flag"
	"time"

	"github.com/nbdboot/nbdboot/internal/tomlx"
	"github.com/nbdboot/nbdboot/pxe"
)

// pxeFlags are the [pxe] section's main keys as flags, for quick use
// without a config file: -pxe-interface turns the service on.
type pxeFlags struct {
	iface, kernel, initramfs, cmdline, export, ipxeBIOS, ipxeEFI *string
	httpPort, transfersPerAddr, httpPerAddr                      *int
	stall                                                        *time.Duration
}

func addPXEFlags(fs *flag.FlagSet) *pxeFlags {
	return &pxeFlags{
		iface:     fs.String("pxe-interface", "", "serve network boot (proxyDHCP, TFTP, HTTP) on this `interface` ([pxe] interface)"),
		kernel:    fs.String("pxe-kernel", "", "kernel `file` machines boot ([pxe] kernel)"),
		initramfs: fs.String("pxe-initramfs", "", "nbdboot initramfs `file` ([pxe] initramfs)"),
		cmdline:   fs.String("pxe-cmdline", pxe.DefaultCmdline, "kernel command line `template`: ${server}, ${export}, ${mac} are filled in ([pxe] cmdline)"),
		export:    fs.String("pxe-export", "", "`export` for ${export} of machines without their own ([pxe.default] export)"),
		ipxeBIOS:  fs.String("pxe-ipxe-bios", pxe.DefaultIPXEBIOS, "iPXE `file` for BIOS PXE ROMs ([pxe] ipxe_bios)"),
		ipxeEFI:   fs.String("pxe-ipxe-efi", pxe.DefaultIPXEEFI, "iPXE `file` for x86-64 UEFI ([pxe] ipxe_efi)"),
		httpPort:  fs.Int("pxe-http-port", pxe.DefaultHTTPPort, "TCP `port` of the boot files' HTTP server ([pxe] http_port)"),
		transfersPerAddr: fs.Int("pxe-max-transfers-per-address", pxe.DefaultTransfersPerAddress,
			"TFTP transfers one source address may hold at once ([pxe] max_transfers_per_address)"),
		httpPerAddr: fs.Int("pxe-max-http-per-address", pxe.DefaultHTTPPerAddress,
			"HTTP connections one source address may hold at once ([pxe] max_http_per_address)"),
		stall: fs.Duration("pxe-stall-timeout", pxe.DefaultStallTimeout,
			"cut a TFTP transfer or HTTP download whose client takes no data for this `long` ([pxe] stall_timeout)"),
	}
}

// apply sets c's field of the flag named name, if it is one of these.
func (f *pxeFlags) apply(name string, c *pxe.Config) {
	switch name {
	case "pxe-interface":
		c.Interface = *f.iface
	case "pxe-kernel":
		c.Kernel = *f.kernel
	case "pxe-initramfs":
		c.Initramfs = *f.initramfs
	case "pxe-cmdline":
		c.Cmdline = *f.cmdline
	case "pxe-export":
		c.Default.Export = *f.export
	case "pxe-ipxe-bios":
		c.IPXEBIOS = *f.ipxeBIOS
	case "pxe-ipxe-efi":
		c.IPXEEFI = *f.ipxeEFI
	case "pxe-http-port":
		c.HTTPPort = *f.httpPort
	case "pxe-max-transfers-per-address":
		c.MaxTransfersPerAddress = *f.transfersPerAddr
	case "pxe-max-http-per-address":
		c.MaxHTTPPerAddress = *f.httpPerAddr
	case "pxe-stall-timeout":
		c.StallTimeout = tomlx.Duration(*f.stall)
	}
}
