package media

import (
	"fmt"
	"strings"
	"time"
)

// Paths on the hybrid image. ISOLINUX reads ISO 9660 names (upper case,
// 8.3), so the files it loads have names that survive that.
const (
	isoKernel    = "/boot/vmlinuz"
	isoInitramfs = "/boot/initrd"
	isoEFIImage  = "boot/efi.img"
	isoIsolinux  = "isolinux/isolinux.bin"
	isoCatalog   = "isolinux/boot.cat"
	// isoDiskInfo is the file Debian's CD GRUB searches for to find the
	// image's filesystem (gcdx64.efi's built-in configuration).
	isoDiskInfo = ".disk/info"
	isoGrubCfg  = "boot/grub/grub.cfg"
	isoLinuxCfg = "isolinux/isolinux.cfg"
)

// Names on the floppy: 8.3, so that no long-name entries are needed.
const (
	floppyIPXE   = "IPXE.KRN"
	floppyScript = "NBDBOOT.IPX"
	floppyCfg    = "syslinux.cfg"
)

// deciseconds is d for SYSLINUX's TIMEOUT, at least 1 when d > 0.
func deciseconds(d time.Duration) int64 {
	n := int64(d / (100 * time.Millisecond))
	if n == 0 && d > 0 {
		n = 1
	}
	return n
}

// isolinuxCfg is ISOLINUX's configuration on the hybrid image: one entry,
// booted after timeout unless a key is pressed (then the boot: prompt
// takes "nbdboot EXTRA PARAMETERS"). It talks on the first serial port too.
func isolinuxCfg(cmdline string, timeout time.Duration) string {
	var b strings.Builder
	b.WriteString("SERIAL 0 115200\n")
	fmt.Fprintf(&b, "SAY nbdboot: booting %s\n", waitWords(timeout))
	b.WriteString("DEFAULT nbdboot\n")
	if timeout > 0 {
		fmt.Fprintf(&b, "PROMPT 1\nTIMEOUT %d\n", deciseconds(timeout))
	} else {
		b.WriteString("PROMPT 0\n")
	}
	fmt.Fprintf(&b, "LABEL nbdboot\n  KERNEL %s\n  INITRD %s\n  APPEND %s\n", isoKernel, isoInitramfs, cmdline)
	return b.String()
}

// waitWords says when the menu boots.
func waitWords(timeout time.Duration) string {
	if timeout <= 0 {
		return "now"
	}
	return fmt.Sprintf("in %v (press a key for the boot: prompt; \"nbdboot PARAM=VALUE\" adds parameters)", timeout)
}

// grubCfg is GRUB's configuration on the hybrid image (UEFI): one menu
// entry, booted after timeout.
func grubCfg(cmdline string, timeout time.Duration) string {
	var b strings.Builder
	b.WriteString("set default=0\n")
	fmt.Fprintf(&b, "set timeout=%d\n", int64((timeout+time.Second-1)/time.Second))
	b.WriteString("set gfxpayload=text\n")
	fmt.Fprintf(&b, "menuentry 'nbdboot' {\n\techo 'nbdboot: loading the kernel and initramfs'\n\tlinux %s %s\n\tinitrd %s\n}\n",
		isoKernel, grubWords(cmdline), isoInitramfs)
	return b.String()
}

// syslinuxCfg is the floppy's SYSLINUX configuration: iPXE with the
// script as its initrd, at once.
func syslinuxCfg() string {
	return "SERIAL 0 115200\nSAY nbdboot: starting iPXE\nDEFAULT ipxe\nPROMPT 0\n" +
		fmt.Sprintf("LABEL ipxe\n  KERNEL %s\n  INITRD %s\n", floppyIPXE, floppyScript)
}

// ipxeScript is the floppy's iPXE script: DHCP on any card, then the
// kernel and initramfs over HTTP; any failure starts again (a lab machine
// waits for its server rather than stopping at a prompt).
func ipxeScript(kernelURL, initramfsURL, cmdline string) string {
	var b strings.Builder
	b.WriteString(ipxeDHCP)
	fmt.Fprintf(&b, "echo nbdboot: kernel from %s\n", kernelURL)
	fmt.Fprintf(&b, "kernel %s %s || goto retry\n", kernelURL, cmdline)
	fmt.Fprintf(&b, "echo nbdboot: initramfs from %s\n", initramfsURL)
	fmt.Fprintf(&b, "initrd %s || goto retry\n", initramfsURL)
	b.WriteString("boot || goto retry\n")
	return b.String()
}

// ipxeDHCP starts the floppy's scripts: DHCP on any card until it works,
// then ${server} is the boot server: nbdserve's proxyDHCP answer's
// next-server when there was one (the site's DHCP server may name itself
// as next-server, as dnsmasq does, and iPXE's plain ${next-server} is
// that one), else the DHCP server's.
const ipxeDHCP = "#!ipxe\n:retry\necho nbdboot: DHCP\ndhcp || goto retry\n" +
	"isset ${proxydhcp/next-server} && set server ${proxydhcp/next-server} || set server ${next-server}\n"

// ipxeChain is the floppy's iPXE script without a command line of its
// own: DHCP, then the script the server makes for this machine.
func ipxeChain(scriptURL string) string {
	return ipxeDHCP + fmt.Sprintf("echo nbdboot: boot script from %s\nchain %s || goto retry\n", scriptURL, scriptURL)
}
