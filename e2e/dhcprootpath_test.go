package e2e

import (
	"net"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/nbdboot/nbdboot/internal/vm"
	"github.com/nbdboot/nbdboot/server"
)

// The lab's DHCP range for TestBootDHCPRootPath (vm.NewLab puts the
// server on 10.0.3.1/24).
const (
	dhcpRangeLo = "10.0.3.50"
	dhcpRangeHi = "10.0.3.59"
)

// dhcpAddrRE matches an address of the range with the lab's prefix.
var dhcpAddrRE = `10\.0\.3\.5[0-9]/24`

// TestBootDHCPRootPath: nbdroot=dhcp takes the server from the DHCP
// root-path (option 17), which qemu's own DHCP cannot send. The guest is
// on a lab network (a namespace with a bridge and a tap) where dnsmasq
// hands out an address of its range with root-path
// nbd://10.0.3.1:10809/root, and nbdserve listens on the bridge's
// address. The console must show the DHCP address, the root-path and a
// connection to the URI it names; the root's init runs on /dev/nbd0 and
// its write reaches the server's image.
func TestBootDHCPRootPath(t *testing.T) {
	t.Parallel()
	requireBootTools(t)
	acquireBoot(t)
	lab := vm.NewLab(t, 1)
	serverAddr := net.JoinHostPort(lab.Server, "10809")
	rootPath := "nbd://" + serverAddr + "/" + exportName
	dns := vm.StartDnsmasq(t, lab, vm.DnsmasqConfig{RangeLo: dhcpRangeLo, RangeHi: dhcpRangeHi, RootPath: rootPath})
	ln, err := lab.Listen(serverAddr)
	if err != nil {
		t.Fatal(err)
	}
	img := vm.CopyImage(t, "root.ext4")
	srv := vm.StartServer(t, vm.ServerConfig{Listener: ln, StateDir: filepath.Join(t.TempDir(), "state"), Debug: true, Exports: []server.ExportConfig{{Name: exportName, Path: img}}})

	id := newID(t)
	m := vm.Start(t, vm.Options{
		NetNS:   lab.NS,
		NICs:    []vm.NIC{{Tap: lab.Taps[0]}},
		Cmdline: "quiet ip=dhcp nbdroot=dhcp rw nbdtest.id=" + id,
	})
	netLine := m.ExpectLine(`nbdboot: .*network: eth0 (`+dhcpAddrRE+`) via dhcp`, bootTimeout)
	m.ExpectLine(`nbdboot: .*dhcp: root-path "`+regexp.QuoteMeta(rootPath)+`": `, stepTimeout)
	m.ExpectLine(`nbdboot: .*connect: `+regexp.QuoteMeta(rootPath)+`: [0-9]+ bytes`, stepTimeout)
	att := m.ExpectLine(`nbdboot: .*attach: (\S+) on (/dev/nbd[0-9]+), ([0-9]+) connection`, stepTimeout)
	if att[1] != rootPath || att[2] != "/dev/nbd0" || att[3] != "1" {
		t.Errorf("nbdboot attached %s on %s with %s connection(s), want %s on /dev/nbd0 with 1", att[1], att[2], att[3], rootPath)
	}
	root := m.ExpectLine(`NBDBOOT-ROOT-INIT ok id=`+regexp.QuoteMeta(id)+` mode=write root=(\S+) (\S+) (\S+)`, stepTimeout)
	qemuToRoot := m.Since()
	if root[1] != "/dev/nbd0" || root[2] != "ext4" || !hasOpt(root[3], "rw") {
		t.Errorf("root's init reports root %s %s %s; want /dev/nbd0 ext4 rw", root[1], root[2], root[3])
	}
	m.ExpectLine(`NBDBOOT-ROOT-WROTE id=`+regexp.QuoteMeta(id)+` value=`+vm.RootValue(id), stepTimeout)
	m.WaitExit(exitTimeout)

	// dnsmasq acknowledged the address the guest reports.
	leased := netLine[1][:len(netLine[1])-len("/24")]
	if n := countLines(dns, "DHCPACK(br0) "+leased+" "); n == 0 {
		t.Errorf("dnsmasq never acknowledged %s; log:\n%s", leased, dns.Tail(20))
	}
	if n := srv.Log.Count(vm.LogConnected); n < 1 {
		t.Errorf("the server saw no connection; log:\n%s", srv.Log.Tail(20))
	}
	if err := srv.Stop(); err != nil {
		t.Error(err)
	}
	checkWritten(t, img, 0, id)
	logTimings(t, m, qemuToRoot)
}
