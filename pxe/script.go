package pxe

import (
	"fmt"
	"net"
	"strings"
)

// script is the iPXE script that boots mac: the kernel with its command
// line and the initramfs, both over HTTP from base. The kernel's
// initrd=initramfs names the initramfs for a UEFI kernel's EFI stub
// (iPXE names an image after its URL's last element); the kernel itself
// ignores it on BIOS.
func script(base string, mac net.HardwareAddr, cmdline string) string {
	var b strings.Builder
	b.WriteString("#!ipxe\n")
	fmt.Fprintf(&b, "echo nbdboot: %s boots from %s\n", mac, base)
	fmt.Fprintf(&b, "kernel %s/kernel initrd=initramfs %s || goto failed\n", base, cmdline)
	fmt.Fprintf(&b, "initrd %s/initramfs || goto failed\n", base)
	b.WriteString("boot || goto failed\n")
	b.WriteString(":failed\necho nbdboot: network boot failed, retrying in 10 seconds\nsleep 10\nreboot\n")
	return b.String()
}
