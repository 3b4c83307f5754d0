package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/testutil"
	"github.com/nbdboot/nbdboot/internal/vm"
	"github.com/nbdboot/nbdboot/media"
)

// Boots from media built by nbdboot media (issue 9, tests 4 and 5): the
// hybrid image as a USB stick on BIOS (SeaBIOS) and on UEFI (OVMF), and
// as a CD on BIOS; the floppy on BIOS, chaining to nbdserve's HTTP. Each
// boots the Debian bzImage and the nbdboot initramfs through the medium's
// boot loader to the root's init, whose write must land in the server's
// image.

// ovmfImage is Debian's OVMF firmware in one file (package ovmf).
const ovmfImage = "/usr/share/ovmf/OVMF.fd"

// mediumTimeout bounds qemu start to nbdboot's attach for a firmware boot
// (the firmware, the boot loader reading 13 MB through BIOS calls, and
// the bzImage's decompression, all under TCG); UEFI is slower still.
const (
	mediumTimeout = 240 * time.Second
	uefiTimeout   = 300 * time.Second
)

// buildMedium builds a medium of kind with cmdline into the test's
// directory, with the build's bzImage and initramfs, a one-second menu.
func buildMedium(t *testing.T, c media.Config) string {
	t.Helper()
	for _, tool := range []string{"xorriso", "mkfs.fat", "mcopy", "syslinux"} {
		testutil.RequireTool(t, tool)
	}
	c.Output = filepath.Join(t.TempDir(), string(c.Kind)+".img")
	if c.Kind.Hybrid() {
		c.Kernel, c.Initramfs = vm.BzImage(t), vm.Initramfs(t)
	}
	c.Timeout = time.Second
	res, err := media.Build(t.Context(), c)
	if err != nil {
		t.Fatalf("build the medium: %v", err)
	}
	t.Logf("%s", res)
	return res.Path
}

// usbStick is qemu's arguments for img as a USB stick on an xHCI
// controller, the first boot device.
func usbStick(img string) []string {
	return []string{
		"-drive", "if=none,id=stick,format=raw,readonly=on,file=" + img,
		"-device", "qemu-xhci,id=xhci",
		"-device", "usb-storage,bus=xhci.0,drive=stick,bootindex=0",
	}
}

// hybridCase is a boot of the hybrid image with drive (and firmware)
// arguments from args.
func hybridCase(args func(img string) []string, memory string, timeout time.Duration) bootCase {
	return bootCase{
		image:   "root.ext4",
		cmdline: "ip=dhcp nbdroot=nbd://10.0.2.100:10809/root",
		device:  "/dev/nbd0",
		rootDev: "/dev/nbd0",
		fstype:  "ext4",
		conns:   1,
		medium: func(t *testing.T, cmdline string) mediumBoot {
			img := buildMedium(t, media.Config{Kind: media.USB, Cmdline: cmdline})
			return mediumBoot{args: args(img), memory: memory, timeout: timeout}
		},
	}
}

// TestMediaUSBBIOS: the hybrid image as a USB stick under SeaBIOS
// (isohybrid MBR, then ISOLINUX).
func TestMediaUSBBIOS(t *testing.T) {
	t.Parallel()
	runBoot(t, hybridCase(usbStick, "", mediumTimeout))
}

// TestMediaCDBIOS: the same image as a CD under SeaBIOS (El Torito,
// ISOLINUX).
func TestMediaCDBIOS(t *testing.T) {
	t.Parallel()
	runBoot(t, hybridCase(func(img string) []string {
		return []string{"-cdrom", img, "-boot", "d"}
	}, "", mediumTimeout))
}

// TestMediaUSBUEFI: the same image as a USB stick under OVMF (the MBR's
// EFI system partition, GRUB). OVMF's GRUB needs more than 256 MiB to
// load the kernel and initramfs ("out of memory" with 256M).
func TestMediaUSBUEFI(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("boots a VM (skipped under -short)")
	}
	bios := ovmf(t)
	runBoot(t, hybridCase(func(img string) []string {
		return append([]string{"-bios", bios}, usbStick(img)...)
	}, "512M", uefiTimeout))
}

// floppyDrive is qemu's arguments for img as the first floppy, booted.
func floppyDrive(img string) []string {
	return []string{"-drive", "if=floppy,index=0,format=raw,readonly=on,file=" + img, "-boot", "a"}
}

// TestMediaFloppy: two machines boot floppies on a lab network beside the
// site's DHCP server (dnsmasq, addresses only, on another host, naming
// itself as next-server), served by nbdserve with [pxe]: its proxyDHCP
// answers the floppies' iPXE too, and their script takes that answer's
// next-server as ${server}. One floppy was built with neither a server
// nor a command line: it chains the script nbdserve makes for its MAC.
// The other has its own command line (naming ${server} as the NBD
// server): it fetches only the kernel and initramfs from nbdserve. Both
// reach their root's init on their own export; nbdserve logs each step.
func TestMediaFloppy(t *testing.T) {
	requireBootTools(t)
	lab := vm.NewLab(t, 2)
	// The site's DHCP server on another host of the wire, so that only
	// nbdserve's answer names nbdserve's address.
	vm.StartDnsmasq(t, lab.Peer(t, "10.0.3.2"), vm.DnsmasqConfig{RangeLo: dhcpRangeLo, RangeHi: dhcpRangeHi})
	base := newID(t)
	ms := []pxeMachine{
		{name: "chain", mac: "52:54:00:9e:00:31", export: "chain", id: base + "-chain", img: vm.CopyImage(t, "root.ext4")},
		{name: "own", mac: "52:54:00:9e:00:32", export: "own", id: base + "-own", img: vm.CopyImage(t, "root.ext4")},
	}
	srv := pxeServer(t, lab, pxeConfig(t, lab, t.TempDir(), ms, "[pxe.default]\nrefuse = true\n"))
	server := fmt.Sprintf("http://${server}:%d", pxeHTTPPort)
	own := fmt.Sprintf("%s quiet ip=dhcp nbdroot=nbd://${server}/%s rw nbdtest.id=%s", vm.BaseCmdline, ms[1].export, ms[1].id)
	imgs := []string{
		buildMedium(t, media.Config{Kind: media.Floppy, Server: server}),
		buildMedium(t, media.Config{Kind: media.Floppy, Server: server, Cmdline: own}),
	}
	var gs []*vm.Machine
	for i, m := range ms {
		gs = append(gs, vm.Start(t, vm.Options{
			Name: m.name, Firmware: true, NetNS: lab.NS,
			NICs: []vm.NIC{{Tap: lab.Taps[i], MAC: m.mac}}, // no option ROM: the floppy's iPXE drives the card
			Args: floppyDrive(imgs[i]),
		}))
	}
	checkPXEBoot(t, gs[0], srv, ms[0], "proxy-offer", "script", "kernel", "initramfs")
	checkPXEBoot(t, gs[1], srv, ms[1], "proxy-offer", "kernel", "initramfs")
	if n := countLines(srv.Log, "mac="+ms[1].mac, "step=script"); n != 0 {
		t.Errorf("the floppy with its own command line fetched nbdserve's script %d times", n)
	}
	if err := srv.Stop(); err != nil {
		t.Error(err)
	}
	for _, m := range ms {
		checkWritten(t, m.img, 0, m.id)
	}
}
