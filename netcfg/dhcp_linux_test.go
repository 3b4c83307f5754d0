package netcfg

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/testutil"
	"github.com/nbdboot/nbdboot/internal/vm"
)

const clientMAC = "02:00:00:00:99:02"

// dhcpLab builds two namespaces joined by a veth pair: the server side s0
// (10.99.0.1/24) and the client side c0 with a fixed MAC. It returns the
// client namespace and the server namespace.
func dhcpLab(t *testing.T) (client, server string) {
	t.Helper()
	client, server = newNetns(t), newNetns(t)
	ip(t, "-n", client, "link", "add", "c0", "address", clientMAC, "type", "veth", "peer", "name", "s0", "netns", server)
	ip(t, "-n", server, "addr", "add", "10.99.0.1/24", "dev", "s0")
	ip(t, "-n", server, "link", "set", "s0", "up")
	ip(t, "-n", server, "link", "set", "lo", "up")
	return client, server
}

// waitLine waits up to d for a line of log containing sub, failing the
// test with the log's tail.
func waitLine(t *testing.T, log *vm.LineLog, d time.Duration, sub string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := log.WaitCount(ctx, sub, 1); err != nil {
		t.Fatalf("%v:\n%s", err, log.Tail(30))
	}
}

// startDnsmasq runs dnsmasq on s0 in namespace ns and waits until it serves
// DHCP. It is killed at cleanup.
func startDnsmasq(t *testing.T, ns string) *vm.LineLog {
	t.Helper()
	testutil.RequireTool(t, "dnsmasq")
	dir := t.TempDir()
	conf := strings.Join([]string{
		"port=0", // no DNS
		"no-resolv", "no-hosts", "bind-interfaces", "interface=s0", "except-interface=lo",
		"dhcp-authoritative", "log-dhcp",
		"no-ping", // no 3 s probe of each new address before the OFFER
		"dhcp-range=10.99.0.50,10.99.0.99,255.255.255.0,1h",
		"dhcp-host=" + clientMAC + ",10.99.0.42,client42",
		"dhcp-host=id:00:6e:62:64:31,10.99.0.43", // client ID "\x00nbd1"
		"dhcp-option=3,10.99.0.1",
		"dhcp-option=6,10.99.0.53,10.99.0.54",
		"dhcp-option=15,lab.test",
		`dhcp-option=17,"nbd://10.0.0.1/root"`,
		"dhcp-option=26,1400",
		"dhcp-leasefile=" + filepath.Join(dir, "leases"),
		"pid-file=" + filepath.Join(dir, "pid"),
		"user=root", "group=root",
	}, "\n") + "\n"
	confPath := filepath.Join(dir, "dnsmasq.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, "dnsmasq", "--keep-in-foreground", "--conf-file="+confPath, "--log-facility=-")
	log := vm.NewLineLog()
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("dnsmasq:\n%s", strings.Join(log.Lines(), "\n"))
		}
	})
	waitLine(t, log, 20*time.Second, "DHCP, IP range 10.99.0.50")
	return log
}

// TestConfigureDHCP runs Configure against dnsmasq across two namespaces
// and checks the lease, the installed configuration, resolv.conf, the
// hostname, a renewal, a second Configure, and a client ID lease.
func TestConfigureDHCP(t *testing.T) {
	if !inChild() {
		client, server := dhcpLab(t)
		log := startDnsmasq(t, server)
		runChild(t, client)
		// The client's identity options reached the server.
		waitLine(t, log, 10*time.Second, "DHCPACK(s0) 10.99.0.42 "+clientMAC+" client42")
		waitLine(t, log, 10*time.Second, "DHCPACK(s0) 10.99.0.43 "+clientMAC+" sent-name")
		waitLine(t, log, 10*time.Second, "vendor class: nbdboot")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := handle(t)
	resolv := filepath.Join(t.TempDir(), "etc", "resolv.conf")
	var hostnames []string
	opts := []Option{
		WithHandle(h), WithLogf(t.Logf), WithResolvConf(resolv),
		WithHostnameFunc(func(n string) error { hostnames = append(hostnames, n); return nil }),
	}
	cfg := Config{IP: []IPConfig{{Device: "c0", Autoconf: AutoconfDHCP}}, DHCP: DHCPConfig{Timeout: 30 * time.Second}}
	res, err := Configure(ctx, cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if res.Interface != "c0" || res.MAC.String() != clientMAC || !slices.Equal(res.Addrs, []netip.Prefix{pfx("10.99.0.42/24")}) ||
		res.Gateway != addr("10.99.0.1") || !slices.Equal(res.DNS, []netip.Addr{addr("10.99.0.53"), addr("10.99.0.54")}) ||
		res.RootPath != "nbd://10.0.0.1/root" || res.Hostname != "client42" || res.Domain != "lab.test" {
		t.Errorf("Configure result: %+v", res)
	}
	if len(res.Links) != 1 {
		t.Fatalf("Links = %+v", res.Links)
	}
	lr := res.Links[0]
	l := lr.Lease
	if lr.Method != MethodDHCP || lr.MTU != 1400 || l == nil || l.Duration != time.Hour || l.ServerID != addr("10.99.0.1") || l.Interface != "c0" {
		t.Errorf("link result %+v, lease %+v", lr, l)
	}
	var phases []string
	for _, p := range res.Timings {
		phases = append(phases, p.Phase)
	}
	if want := []string{"carrier c0", "dhcp c0", "apply c0", "resolv.conf", "hostname"}; !slices.Equal(phases, want) {
		t.Errorf("phases %q, want %q", phases, want)
	}
	snap := snapshot(t, h)
	for _, want := range []string{
		"link c0 up=true mtu=1400",
		"link lo up=true mtu=65536",
		"addr c0 10.99.0.42/24 brd 10.99.0.255 flags 0x80 valid forever preferred forever",
		"route default dev c0 gw 10.99.0.1 src <nil> proto 3 scope 0 flags 0x0 metric 0",
	} {
		if !strings.Contains(snap, want+"\n") && !strings.HasSuffix(snap, want) {
			t.Errorf("namespace lacks %q:\n%s", want, snap)
		}
	}
	if b, err := os.ReadFile(resolv); err != nil || string(b) != "# written by nbdboot\nsearch lab.test\nnameserver 10.99.0.53\nnameserver 10.99.0.54\n" {
		t.Errorf("resolv.conf = %q, %v", b, err)
	}
	if !slices.Equal(hostnames, []string{"client42"}) {
		t.Errorf("hostnames set: %q", hostnames)
	}

	// Renewal keeps the address and extends the lease.
	renewed, err := DHCPConfig{Logf: t.Logf}.Renewer(lr.Index)(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Addr != l.Addr || renewed.Acquired.Before(l.Acquired) || renewed.RootPath != l.RootPath {
		t.Errorf("renewed lease %+v, was %+v", renewed, l)
	}

	// The resident process's KeepLeases renews at T1 (dnsmasq's T1 is
	// about half the lease, with a random part).
	if keepLog := keepUntilRenewed(t, res, nil); !slices.Contains(keepLog, "dhcp on c0: renewed 10.99.0.42/24 for 1h0m0s") {
		t.Errorf("KeepLeases log: %q", keepLog)
	}

	// Configuring again changes nothing.
	if _, err := Configure(ctx, cfg, opts...); err != nil {
		t.Fatal(err)
	}
	if again := snapshot(t, h); again != snap {
		t.Errorf("second Configure changed the namespace:\n%s\nwas:\n%s", again, snap)
	}

	// The client identity is configurable: dnsmasq hands 10.99.0.43 to
	// client ID 00 6e 62 64 31 and logs the host name sent.
	byID, err := DHCP(ctx, "c0", DHCPConfig{ClientID: []byte{0, 'n', 'b', 'd', '1'}, Hostname: "sent-name", Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if byID.Addr != pfx("10.99.0.43/24") {
		t.Errorf("lease for client ID: %+v", byID)
	}
}

// TestRenewAfterRename: udev renames the boot interface under a running
// system (eth0 -> ens2, on kernels from 6.2 even while it is up). The
// resident process's renewal goes by the interface index, so the lease is
// still renewed on the renamed link.
func TestRenewAfterRename(t *testing.T) {
	if !inChild() {
		client, server := dhcpLab(t)
		log := startDnsmasq(t, server)
		runChild(t, client)
		waitLine(t, log, 10*time.Second, "DHCPACK(s0) 10.99.0.42 "+clientMAC+" client42")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := handle(t)
	cfg := Config{IP: []IPConfig{{Device: "c0", Autoconf: AutoconfDHCP}}, DHCP: DHCPConfig{Timeout: 30 * time.Second}}
	res, err := Configure(ctx, cfg, WithHandle(h), WithLogf(t.Logf), WithResolvConf(""), WithHostnameFunc(nil))
	if err != nil {
		t.Fatal(err)
	}
	// The loop sleeps until T1; rename meanwhile.
	keepLog := keepUntilRenewed(t, res, func(t *testing.T) {
		link, err := h.LinkByName("c0")
		if err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetName(link, "ens2"); err != nil {
			// Kernels before 6.2 rename only a link that is down.
			if err := h.LinkSetDown(link); err != nil {
				t.Fatal(err)
			}
			if err := h.LinkSetName(link, "ens2"); err != nil {
				t.Fatalf("rename c0 to ens2: %v", err)
			}
			if err := h.LinkSetUp(link); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := InterfaceName(res.Links[0].Index); err != nil {
			t.Fatal(err)
		}
	})
	if !slices.Contains(keepLog, "dhcp on ens2: renewed 10.99.0.42/24 for 1h0m0s") {
		t.Errorf("no renewal on the renamed link; KeepLeases log: %q", keepLog)
	}
}

// TestDHCPNoServer checks that DHCP without a server retries and fails
// within its deadline, naming the interface.
func TestDHCPNoServer(t *testing.T) {
	if !inChild() {
		client, _ := dhcpLab(t)
		runChild(t, client)
		return
	}
	h := handle(t)
	cfg := Config{IP: []IPConfig{{Device: "c0", Autoconf: AutoconfDHCP}}, DHCP: DHCPConfig{Timeout: 3 * time.Second, FirstWait: 500 * time.Millisecond}}
	start := time.Now()
	_, err := Configure(context.Background(), cfg, WithHandle(h), WithLogf(t.Logf), WithResolvConf(""), WithHostnameFunc(nil))
	elapsed := time.Since(start)
	// Attempts wait 0.5s, 1s, then 2s, cut short at 3s: normally 3.
	if err == nil || !regexp.MustCompile(`^dhcp on c0: no lease after [23] attempts within 3s: context deadline exceeded$`).MatchString(err.Error()) {
		t.Fatalf("Configure without a server: %v", err)
	}
	// Generous: the point is that it gives up, not how fast.
	if elapsed > 20*time.Second {
		t.Errorf("Configure took %s with a 3s DHCP timeout", elapsed)
	}
}
