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
	path := filepath.Join(t.TempDir(), "nbdserve.toml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	p := lab.Start(t, bin, "-config", path, "-debug")
	if err := p.WaitLog("msg=serving", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return p
}

// pxeConfig is an nbdserve config serving every machine's export on the
// lab and booting them over the network; extra is appended ([pxe.default],
// [pxe.dhcp]).
func pxeConfig(t *testing.T, lab *vm.Lab, ms []pxeMachine, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen = %q\nstate_dir = %q\n\n", lab.Server+":10809", filepath.Join(t.TempDir(), "state"))
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

// pxeBoot starts m's guest booting from its network card on tap.
func pxeBoot(t *testing.T, lab *vm.Lab, m pxeMachine, tap string, uefi bool) *vm.Machine {
	o := vm.Options{
		Name:     m.name,
		Firmware: true,
		NetNS:    lab.NS,
		NICs:     []vm.NIC{{Tap: tap, MAC: m.mac, ROM: true}},
	}
	if uefi {
		o.Args = []string{"-bios", ovmf(t)}
		o.Memory = "512M"
	}
	return vm.Start(t, o)
}

// ovmf is Debian's OVMF firmware image (package ovmf).
func ovmf(t *testing.T) string {
	const p = "/usr/share/ovmf/OVMF.fd"
	if _, err := os.Stat(p); err != nil {
		testutil.Missing(t, "OVMF not installed (Debian package ovmf): %v", err)
	}
	return p
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
	srv := pxeServer(t, lab, pxeConfig(t, lab, ms, "[pxe.default]\nrefuse = true\n"))

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
