package netcfg

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// TestCarrier checks the carrier wait: a deadline error naming the link
// while the peer is down, and success once the peer comes up meanwhile.
func TestCarrier(t *testing.T) {
	if !inChild() {
		runChild(t, newNetns(t))
		return
	}
	h := handle(t)
	addVeth(t, h, "k0", "k1")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := upLinks(ctx, h, []netlink.Link{link(t, h, "k0")})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "wait for carrier on k0") {
		t.Fatalf("upLinks with the peer down = %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	peerUp := make(chan error, 1)
	k1 := link(t, h, "k1")
	go func() { peerUp <- netlink.LinkSetUp(k1) }() // races with the subscription on purpose
	l, err := upLinks(ctx, h, []netlink.Link{link(t, h, "k0")})
	if err != nil || l.Attrs().Name != "k0" {
		t.Fatalf("upLinks = %v, %v", l, err)
	}
	if err := <-peerUp; err != nil {
		t.Fatal(err)
	}
	if lo := link(t, h, "lo"); lo.Attrs().Flags&net.FlagUp == 0 {
		t.Error("lo is not up")
	}
}

// TestConfigureStaticFirstCarrier configures a static ip= without a device
// in a namespace with two links of which only b0 has carrier (its peer is up
// in another namespace): b0 is chosen, a0 is set down again, and the static
// DNS and hostname are written. A named device without carrier times out
// with an error naming it.
func TestConfigureStaticFirstCarrier(t *testing.T) {
	if !inChild() {
		client, peer := newNetns(t), newNetns(t)
		ip(t, "-n", client, "link", "add", "a0", "type", "veth", "peer", "name", "a1", "netns", peer)
		ip(t, "-n", client, "link", "add", "b0", "type", "veth", "peer", "name", "b1", "netns", peer)
		ip(t, "-n", peer, "link", "set", "b1", "up")
		runChild(t, client)
		return
	}
	h := handle(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := ParseIP("10.99.1.2::10.99.1.1:24:static-host::off:10.99.1.53::10.99.1.123")
	if err != nil {
		t.Fatal(err)
	}
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	var hostnames []string
	res, err := Configure(ctx, Config{IP: []IPConfig{c}, CarrierTimeout: 20 * time.Second},
		WithHandle(h), WithLogf(t.Logf), WithResolvConf(resolv),
		WithHostnameFunc(func(n string) error { hostnames = append(hostnames, n); return nil }))
	if err != nil {
		t.Fatal(err)
	}
	if res.Interface != "b0" || !slices.Equal(res.Addrs, []netip.Prefix{pfx("10.99.1.2/24")}) || res.Gateway != addr("10.99.1.1") ||
		!slices.Equal(res.DNS, []netip.Addr{addr("10.99.1.53")}) || res.Hostname != "static-host" || res.RootPath != "" ||
		res.Links[0].Method != MethodStatic || !slices.Equal(res.Links[0].NTP, []netip.Addr{addr("10.99.1.123")}) {
		t.Errorf("Configure result %+v", res)
	}
	snap := snapshot(t, h)
	for _, want := range []string{
		"link a0 up=false mtu=1500",
		"link b0 up=true mtu=1500",
		"addr b0 10.99.1.2/24 brd 10.99.1.255 flags 0x80 valid forever preferred forever",
		"route default dev b0 gw 10.99.1.1 src <nil> proto 3 scope 0 flags 0x0 metric 0",
	} {
		if !slices.Contains(strings.Split(snap, "\n"), want) {
			t.Errorf("namespace lacks %q:\n%s", want, snap)
		}
	}
	if b, err := os.ReadFile(resolv); err != nil || string(b) != "# written by nbdboot\nnameserver 10.99.1.53\n" {
		t.Errorf("resolv.conf = %q, %v", b, err)
	}
	if !slices.Equal(hostnames, []string{"static-host"}) {
		t.Errorf("hostnames set: %q", hostnames)
	}

	for _, tc := range []struct {
		ip   string
		want string
	}{
		{"10.99.2.2:::24::a0:off", "ip=10.99.2.2:::255.255.255.0::a0:off: wait for carrier on a0: context deadline exceeded"},
		{"nosuch0:dhcp", "ip= device nosuch0: Link not found"},
		{"rarp", "ip=rarp: autoconf rarp is not supported"},
	} {
		c, err := ParseIP(tc.ip)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Configure(ctx, Config{IP: []IPConfig{c}, CarrierTimeout: 300 * time.Millisecond},
			WithHandle(h), WithResolvConf(""), WithHostnameFunc(nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Configure(ip=%s) = %v, want %q", tc.ip, err, tc.want)
		}
	}
	// ip=off configures nothing.
	res, err = Configure(ctx, Config{IP: []IPConfig{{Autoconf: AutoconfOff}}}, WithHandle(h), WithResolvConf(""), WithHostnameFunc(nil))
	if err != nil || len(res.Links) != 0 {
		t.Errorf("Configure(ip=off) = %+v, %v", res, err)
	}
}

// TestConfigureMultiple configures two ip= entries: each link gets its
// address, only the first IPv4 gateway becomes the default route, an IPv6
// gateway gets its own, and the DNS servers of both are merged.
func TestConfigureMultiple(t *testing.T) {
	if !inChild() {
		client, peer := newNetns(t), newNetns(t)
		for _, p := range [][2]string{{"m0", "m1"}, {"n0", "n1"}, {"o0", "o1"}} {
			ip(t, "-n", client, "link", "add", p[0], "type", "veth", "peer", "name", p[1], "netns", peer)
			ip(t, "-n", peer, "link", "set", p[1], "up")
		}
		runChild(t, client)
		return
	}
	h := handle(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfgs, err := ParseIPs([]string{
		"10.99.5.2::10.99.5.1:24::m0:off:10.99.5.53",
		"10.99.6.2::10.99.6.1:24::n0:off:10.99.6.53",
		"[fd99:7::2]::[fd99:7::1]:64::o0::[fd99:7::53]",
	})
	if err != nil {
		t.Fatal(err)
	}
	// Without WithHandle: Configure opens its own rtnetlink handle.
	res, err := Configure(ctx, Config{IP: cfgs}, WithLogf(t.Logf), WithResolvConf(""), WithHostnameFunc(nil))
	if err != nil {
		t.Fatal(err)
	}
	if res.Interface != "m0" || len(res.Links) != 3 || res.Gateway != addr("10.99.5.1") ||
		!slices.Equal(res.DNS, []netip.Addr{addr("10.99.5.53"), addr("10.99.6.53"), addr("fd99:7::53")}) {
		t.Errorf("Configure result %+v", res)
	}
	var routes []string
	for _, line := range strings.Split(snapshot(t, h), "\n") {
		if strings.HasPrefix(line, "route default") || strings.HasPrefix(line, "addr") && !strings.Contains(line, " lo ") {
			routes = append(routes, line)
		}
	}
	want := []string{
		"addr m0 10.99.5.2/24 brd 10.99.5.255 flags 0x80 valid forever preferred forever",
		"addr n0 10.99.6.2/24 brd 10.99.6.255 flags 0x80 valid forever preferred forever",
		"addr o0 fd99:7::2/64 brd <nil> flags 0x82 valid forever preferred forever",
		"route default dev m0 gw 10.99.5.1 src <nil> proto 3 scope 0 flags 0x0 metric 0",
		"route default dev o0 gw fd99:7::1 src <nil> proto 3 scope 0 flags 0x0 metric 1024",
	}
	if !slices.Equal(routes, want) {
		t.Errorf("addresses and default routes:\n%s\nwant:\n%s", strings.Join(routes, "\n"), strings.Join(want, "\n"))
	}
}
