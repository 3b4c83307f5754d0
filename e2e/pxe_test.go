package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/testutil"
	"github.com/nbdboot/nbdboot/internal/vm"
)

// Network boot: guests boot from their network card's option ROM (qemu's
// iPXE from Debian's ipxe-qemu on SeaBIOS; EDK2's PXE on OVMF) on a lab
// network, served by the nbdserve binary with a [pxe] section, running in
// the lab's namespace: proxyDHCP next to a dnsmasq playing the site's DHCP
// server, or, on an isolated lab, nbdserve's own DHCP.

// pxeHTTPPort is the boot files' HTTP port in the tests.
const pxeHTTPPort = 8080

// pxeBootTimeout bounds qemu start to the root's init on a network boot
// (firmware, iPXE, the bzImage over HTTP): longer than a -kernel boot.
const pxeBootTimeout = 240 * time.Second

// pxeMachine is one guest of a network boot test.
type pxeMachine struct {
	name   string
	mac    string
	export string // "" for a machine not in the table (the default entry)
	id     string // nbdtest.id, from its table entry
	img    string // its export's image
}

// pxeServer runs nbdserve with the config text in lab and waits until it
// serves; its log is the process's.
func pxeServer(t *testing.T, lab *vm.Lab, config string) *vm.Process {
	t.Helper()
	bin := vm.GoBinary(t, "github.com/nbdboot/nbdboot/cmd/nbdserve")
	p := lab.Start(t, bin, "-config", writeFile(t, "nbdserve.toml", config), "-debug")
	if err := p.WaitLog("msg=serving", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return p
}

// pxeConfig is an nbdserve config serving every machine's export on the
// lab, with its state under state, and booting them over the network;
// extra is appended ([pxe.default], [pxe.dhcp]).
func pxeConfig(t *testing.T, lab *vm.Lab, state string, ms []pxeMachine, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen = %q\nstate_dir = %q\n\n", lab.Server+":10809", state)
	for _, m := range ms {
		if m.export != "" {
			fmt.Fprintf(&b, "[[export]]\nname = %q\npath = %q\n\n", m.export, m.img)
		}
	}
	fmt.Fprintf(&b, "[pxe]\ninterface = %q\nhttp_port = %d\nkernel = %q\ninitramfs = %q\n", lab.Bridge, pxeHTTPPort, vm.BzImage(t), vm.Initramfs(t))
	b.WriteString("cmdline = \"" + vm.BaseCmdline + " quiet ip=dhcp nbdroot=nbd://${server}/${export} rw\"\n\n")
	for _, m := range ms {
		if m.export != "" {
			fmt.Fprintf(&b, "[[pxe.machine]]\nmac = %q\nexport = %q\nappend = \"nbdtest.id=%s\"\n\n", m.mac, m.export, m.id)
		}
	}
	b.WriteString(extra)
	return b.String()
}

// pxeBoot starts m's guest booting from its network card on tap: on
// SeaBIOS through the card's iPXE ROM, on OVMF (uefi) through EDK2's own
// PXE client (no option ROM).
func pxeBoot(t *testing.T, lab *vm.Lab, m pxeMachine, tap string, uefi bool) *vm.Machine {
	o := vm.Options{
		Name:     m.name,
		Firmware: true,
		NetNS:    lab.NS,
		NICs:     []vm.NIC{{Tap: tap, MAC: m.mac, Boot: true, ROM: !uefi}},
	}
	if uefi {
		o.Args = []string{"-bios", ovmf(t)}
		o.Memory = "512M"
	}
	return vm.Start(t, o)
}

// ovmf is Debian's OVMF firmware image (media_test.go's ovmfImage).
func ovmf(t *testing.T) string {
	if _, err := os.Stat(ovmfImage); err != nil {
		testutil.Missing(t, "OVMF firmware (Debian package ovmf): %v", err)
	}
	return ovmfImage
}

// checkPXEBoot follows m's guest to its root's init and power-off, checks
// the server logged every step of the chain for its MAC (steps), and that
// the root's write landed in its export's image.
func checkPXEBoot(t *testing.T, g *vm.Machine, srv *vm.Process, m pxeMachine, steps ...string) {
	t.Helper()
	root := g.ExpectLine(`NBDBOOT-ROOT-INIT ok id=`+regexp.QuoteMeta(m.id)+` mode=write root=(\S+) (\S+) (\S+)`, pxeBootTimeout)
	if root[1] != "/dev/nbd0" || root[2] != "ext4" || !hasOpt(root[3], "rw") {
		t.Errorf("%s: root's init reports root %s %s %s; want /dev/nbd0 ext4 rw", m.name, root[1], root[2], root[3])
	}
	g.ExpectLine(`NBDBOOT-ROOT-WROTE id=`+regexp.QuoteMeta(m.id)+` value=`+vm.RootValue(m.id), stepTimeout)
	g.WaitExit(exitTimeout)
	for _, step := range steps {
		if countLines(srv.Log, "msg=pxe", "mac="+m.mac, "step="+step) == 0 {
			t.Errorf("%s: the server logged no step=%s for %s", m.name, step, m.mac)
		}
	}
	if countLines(srv.Log, "msg=connected", "export="+m.export, "mac="+m.mac) == 0 {
		t.Errorf("%s: the server logged no NBD connection to %s with mac=%s", m.name, m.export, m.mac)
	}
}

// TestPXEBIOS: two BIOS guests boot at once through proxyDHCP beside the
// site's DHCP server (dnsmasq, addresses only), each to its own export
// chosen by its MAC; a third, unknown, MAC is refused ([pxe.default]
// refuse) and never gets a boot file. qemu's NIC ROM is iPXE, so the
// chain is proxyDHCP → HTTP script → kernel and initramfs → NBD.
func TestPXEBIOS(t *testing.T) {
	requireBootTools(t)
	lab := vm.NewLab(t, 3)
	vm.StartDnsmasq(t, lab, vm.DnsmasqConfig{RangeLo: dhcpRangeLo, RangeHi: dhcpRangeHi})
	base := newID(t)
	ms := []pxeMachine{
		{name: "pc1", mac: "52:54:00:9e:00:01", export: "pc1", id: base + "-pc1", img: vm.CopyImage(t, "root.ext4")},
		{name: "pc2", mac: "52:54:00:9e:00:02", export: "pc2", id: base + "-pc2", img: vm.CopyImage(t, "root.ext4")},
	}
	stranger := pxeMachine{name: "stranger", mac: "52:54:00:9e:00:99"}
	srv := pxeServer(t, lab, pxeConfig(t, lab, t.TempDir(), ms, "[pxe.default]\nrefuse = true\n"))

	gs := []*vm.Machine{pxeBoot(t, lab, ms[0], lab.Taps[0], false), pxeBoot(t, lab, ms[1], lab.Taps[1], false)}
	s := pxeBoot(t, lab, stranger, lab.Taps[2], false)
	if err := srv.WaitLog("mac="+stranger.mac+" step=refused", pxeBootTimeout); err != nil {
		t.Errorf("the unknown machine was not refused: %v", err)
	}
	for i, m := range ms {
		checkPXEBoot(t, gs[i], srv, m, "proxy-offer", "script", "kernel", "initramfs")
	}
	s.Kill()
	if n := countLines(srv.Log, "mac="+stranger.mac, "step=script"); n != 0 {
		t.Errorf("the unknown machine got its script %d times", n)
	}
	if err := srv.Stop(); err != nil {
		t.Error(err)
	}
	for _, m := range ms {
		checkWritten(t, m.img, 0, m.id)
	}
}

// TestPXEUEFI: a UEFI guest (OVMF) boots through proxyDHCP beside the
// site's DHCP server: EDK2's PXE gets no PXE options on port 67, asks
// again on 4011, loads snponly.efi over TFTP, and iPXE takes the script,
// the kernel (through its EFI stub) and the initramfs over HTTP.
func TestPXEUEFI(t *testing.T) {
	requireBootTools(t)
	lab := vm.NewLab(t, 1)
	vm.StartDnsmasq(t, lab, vm.DnsmasqConfig{RangeLo: dhcpRangeLo, RangeHi: dhcpRangeHi})
	m := pxeMachine{name: "uefi", mac: "52:54:00:9e:00:11", export: "uefi", id: newID(t), img: vm.CopyImage(t, "root.ext4")}
	srv := pxeServer(t, lab, pxeConfig(t, lab, t.TempDir(), []pxeMachine{m}, "[pxe.default]\nrefuse = true\n"))
	g := pxeBoot(t, lab, m, lab.Taps[0], true)
	checkPXEBoot(t, g, srv, m, "proxy-offer", "proxy-ack-4011", "tftp", "script", "kernel", "initramfs")
	if n := countLines(srv.Log, "mac="+m.mac, "step=tftp", "file=snponly.efi", "bytes="); n == 0 {
		t.Errorf("the server never sent snponly.efi over TFTP")
	}
	if err := srv.Stop(); err != nil {
		t.Error(err)
	}
	checkWritten(t, m.img, 0, m.id)
}

// TestPXEIsolated: on a lab with no DHCP server, nbdserve's full-DHCP
// mode hands the guest an address of its range (PXE ROM, iPXE and the
// kernel alike) and keeps the lease in the state directory; started
// again once another DHCP server (dnsmasq on another host of the wire,
// Lab.Peer) answers there, the same config is refused with a message
// naming it.
func TestPXEIsolated(t *testing.T) {
	requireBootTools(t)
	lab := vm.NewLab(t, 1)
	m := pxeMachine{name: "isolated", mac: "52:54:00:9e:00:21", export: "isolated", id: newID(t), img: vm.CopyImage(t, "root.ext4")}
	state := filepath.Join(t.TempDir(), "state")
	config := pxeConfig(t, lab, state, []pxeMachine{m}, "[pxe.default]\nrefuse = true\n\n[pxe.dhcp]\nrange_start = \"10.0.3.100\"\nrange_end = \"10.0.3.109\"\n")
	srv := pxeServer(t, lab, config)
	g := pxeBoot(t, lab, m, lab.Taps[0], false)
	checkPXEBoot(t, g, srv, m, "dhcp-lease", "script", "kernel", "initramfs")
	if err := srv.Stop(); err != nil {
		t.Error(err)
	}
	checkWritten(t, m.img, 0, m.id)
	leases, err := os.ReadFile(filepath.Join(state, "pxe-leases.json"))
	if err != nil || !regexp.MustCompile(`"mac": "`+m.mac+`",\s+"ip": "10\.0\.3\.10[0-9]"`).Match(leases) {
		t.Errorf("lease file: %v\n%s", err, leases)
	}

	vm.StartDnsmasq(t, lab.Peer(t, "10.0.3.2"), vm.DnsmasqConfig{RangeLo: dhcpRangeLo, RangeHi: dhcpRangeHi})
	again := lab.Start(t, vm.GoBinary(t, "github.com/nbdboot/nbdboot/cmd/nbdserve"), "-config", writeFile(t, "again.toml", config))
	if err := again.Wait(30 * time.Second); err == nil {
		t.Error("nbdserve started full-DHCP mode beside another DHCP server")
	}
	if n := countLines(again.Log, "another DHCP server (10.0.3.2) answers on br0"); n == 0 {
		t.Errorf("no error naming the other DHCP server:\n%s", again.Log.Tail(10))
	}
}

// writeFile writes text to a new file named name and returns its path.
func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
