package e2e

import (
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/testutil"
	"github.com/nbdboot/nbdboot/internal/vm"
	"github.com/nbdboot/nbdboot/media"
)

// Boots from media built by nbdboot media (issue 9, tests 4 and 5): the
// hybrid image as a USB stick on BIOS (SeaBIOS) and on UEFI (OVMF), and
// as a CD on BIOS; the floppy on BIOS, chaining to HTTP. Each boots the
// Debian bzImage and the nbdboot initramfs through the medium's boot
// loader to the root's init, whose write must land in the server's image.

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

// guestMAC is the MAC address internal/vm gives the guest's first card.
const guestMAC = "52:54:00:12:34:56"

// floppyHTTP is the guest's address of the test's HTTP server holding the
// kernel and initramfs the floppy fetches.
const floppyHTTP = "10.0.2.101:80"

// TestMediaFloppy: the floppy under SeaBIOS: SYSLINUX, iPXE, DHCP, the
// kernel and initramfs over HTTP from a server the test runs on loopback
// (relayed into the guest), then the root over NBD.
func TestMediaFloppy(t *testing.T) {
	t.Parallel()
	c := hybridCase(nil, "", mediumTimeout)
	c.medium = func(t *testing.T, cmdline string) mediumBoot {
		// nbdserve's layout: the floppy puts in its card's MAC.
		dir := "/boot/" + strings.ReplaceAll(guestMAC, ":", "-")
		srv := serveBootFiles(t, map[string]string{dir + "/kernel": vm.BzImage(t), dir + "/initramfs": vm.Initramfs(t)})
		img := buildMedium(t, media.Config{Kind: media.Floppy, Cmdline: cmdline, Server: "http://" + floppyHTTP})
		t.Cleanup(func() { srv.check(t, dir+"/kernel", dir+"/initramfs") })
		return mediumBoot{
			args:     floppyDrive(img),
			forwards: []vm.Forward{{Guest: floppyHTTP, Host: srv.addr}},
			timeout:  mediumTimeout,
		}
	}
	runBoot(t, c)
}

// floppyDrive is qemu's arguments for img as the first floppy, booted.
func floppyDrive(img string) []string {
	return []string{"-drive", "if=floppy,index=0,format=raw,readonly=on,file=" + img, "-boot", "a"}
}

// TestMediaFloppyPXE: the floppy built with neither a server nor a
// command line, on a lab network beside the site's DHCP server (dnsmasq,
// addresses only, on another host naming itself as next-server):
// nbdserve's proxyDHCP answers the floppy's iPXE too, whose script takes
// that answer's next-server as ${server}; it chains the script nbdserve
// makes for its MAC, which boots the machine's export. nbdserve logs each
// step.
func TestMediaFloppyPXE(t *testing.T) {
	requireBootTools(t)
	lab := vm.NewLab(t, 1)
	// The site's DHCP server on another host of the wire, so that only
	// nbdserve's answer names nbdserve's address.
	vm.StartDnsmasq(t, lab.Peer(t, "10.0.3.2"), vm.DnsmasqConfig{RangeLo: dhcpRangeLo, RangeHi: dhcpRangeHi})
	m := pxeMachine{name: "floppy", mac: "52:54:00:9e:00:31", export: "floppy", id: newID(t), img: vm.CopyImage(t, "root.ext4")}
	srv := pxeServer(t, lab, pxeConfig(t, lab, t.TempDir(), []pxeMachine{m}, "[pxe.default]\nrefuse = true\n"))
	img := buildMedium(t, media.Config{Kind: media.Floppy, Server: fmt.Sprintf("http://${server}:%d", pxeHTTPPort)})
	g := vm.Start(t, vm.Options{
		Name: m.name, Firmware: true, NetNS: lab.NS,
		NICs: []vm.NIC{{Tap: lab.Taps[0], MAC: m.mac}}, // no option ROM: the floppy's iPXE drives the card
		Args: floppyDrive(img),
	})
	checkPXEBoot(t, g, srv, m, "proxy-offer", "script", "kernel", "initramfs")
	if err := srv.Stop(); err != nil {
		t.Error(err)
	}
	checkWritten(t, m.img, 0, m.id)
}

// bootFiles is an HTTP server on loopback serving files by path, and
// counting the complete GETs of each.
type bootFiles struct {
	addr string
	mu   sync.Mutex
	got  map[string]int
}

func serveBootFiles(t *testing.T, files map[string]string) *bootFiles {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for HTTP: %v", err)
	}
	b := &bootFiles{addr: ln.Addr().String(), got: map[string]int{}}
	mux := http.NewServeMux()
	for p, f := range files {
		mux.HandleFunc("GET "+p, func(w http.ResponseWriter, r *http.Request) {
			http.ServeFile(w, r, f)
			b.mu.Lock()
			b.got[p]++
			b.mu.Unlock()
		})
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return b
}

// check asserts that each path was fetched.
func (b *bootFiles) check(t *testing.T, paths ...string) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range paths {
		if b.got[p] == 0 {
			t.Errorf("HTTP: %s was never fetched (fetched: %v)", p, b.got)
		}
	}
}
