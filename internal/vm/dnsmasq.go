package vm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/testutil"
)

// DnsmasqConfig is what a lab's DHCP server hands out on the bridge.
type DnsmasqConfig struct {
	RangeLo, RangeHi string // the address range, inside the lab's /24
	RootPath         string // DHCP option 17; "" for none
}

// dnsmasqStartWait bounds the wait for dnsmasq to report its range.
const dnsmasqStartWait = 20 * time.Second

// StartDnsmasq runs dnsmasq as the DHCP server (addresses only: no DNS,
// no PXE options) on the bridge of lab, in its namespace, and waits until
// it logs its range. Its log (every DHCP exchange, log-dhcp) goes to the
// returned LineLog; it is killed at cleanup and its log printed if the
// test failed. A lease shows as "DHCPACK(br0) ADDRESS MAC".
func StartDnsmasq(t testing.TB, lab *Lab, c DnsmasqConfig) *LineLog {
	t.Helper()
	bin := testutil.RequireTool(t, "dnsmasq")
	dir := t.TempDir()
	lines := []string{
		"port=0", // no DNS
		"no-resolv", "no-hosts", "bind-interfaces", "interface=" + lab.Bridge, "except-interface=lo",
		"dhcp-authoritative", "log-dhcp",
		// No ICMP echo to a new address before offering it: the check
		// holds every OFFER for 3 s, the guest's first two DISCOVERs
		// time out, and the boot's network phase takes 3 s, not 0.1 s.
		"no-ping",
		"dhcp-range=" + c.RangeLo + "," + c.RangeHi + "," + lab.Netmask + ",1h",
		"dhcp-leasefile=" + filepath.Join(dir, "leases"),
		"pid-file=" + filepath.Join(dir, "pid"),
		"user=root", "group=root",
	}
	if c.RootPath != "" {
		lines = append(lines, `dhcp-option=17,"`+c.RootPath+`"`)
	}
	conf := filepath.Join(dir, "dnsmasq.conf")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := lab.Start(t, bin, "--keep-in-foreground", "--conf-file="+conf, "--log-facility=-")
	if err := p.WaitLog("DHCP, IP range "+c.RangeLo, dnsmasqStartWait); err != nil {
		t.Fatalf("dnsmasq in %s did not start serving: %v", lab.NS, err)
	}
	return p.Log
}
