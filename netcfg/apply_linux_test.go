package netcfg

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func handle(t *testing.T) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// addVeth creates a veth pair in the current namespace.
func addVeth(t *testing.T, h *netlink.Handle, name, peer string) {
	t.Helper()
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer}); err != nil {
		t.Fatalf("add veth %s/%s: %v", name, peer, err)
	}
}

func link(t *testing.T, h *netlink.Handle, name string) netlink.Link {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// snapshot renders the namespace's links, addresses (without IPv6
// link-local ones, which the kernel adds by itself) and main-table routes,
// sorted, one per line.
func snapshot(t *testing.T, h *netlink.Handle) string {
	t.Helper()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	names := map[int]string{}
	var lines []string
	for _, l := range links {
		a := l.Attrs()
		names[a.Index] = a.Name
		lines = append(lines, fmt.Sprintf("link %s up=%v mtu=%d", a.Name, a.Flags&net.FlagUp != 0, a.MTU))
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			t.Fatal(err)
		}
		for _, ad := range addrs {
			if ad.IP.IsLinkLocalUnicast() {
				continue
			}
			lines = append(lines, fmt.Sprintf("addr %s %s brd %v flags %#x valid %s preferred %s",
				a.Name, ad.IPNet, ad.Broadcast, ad.Flags, lifetime(ad.ValidLft), lifetime(ad.PreferedLft)))
		}
	}
	routes, err := h.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		dst := "default"
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones > 0 {
				dst = r.Dst.String()
			}
		}
		if strings.HasPrefix(dst, "fe80:") {
			continue
		}
		lines = append(lines, fmt.Sprintf("route %s dev %s gw %v src %v proto %d scope %d flags %#x metric %d",
			dst, names[r.LinkIndex], r.Gw, r.Src, r.Protocol, r.Scope, r.Flags, r.Priority))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func lifetime(v int) string {
	if v == 0xffffffff {
		return "forever"
	}
	return fmt.Sprint(v)
}

// TestApplyIdempotent applies a static IPv4 and IPv6 configuration twice
// and checks the result exactly and that the second pass changed nothing.
func TestApplyIdempotent(t *testing.T) {
	if !inChild() {
		runChild(t, newNetns(t))
		return
	}
	h := handle(t)
	addVeth(t, h, "v0", "v1")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Carrier first, so that no route changes its linkdown flag between
	// the snapshots.
	if err := h.LinkSetUp(link(t, h, "v1")); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"v0", "v1"} {
		if _, err := upLinks(ctx, h, []netlink.Link{link(t, h, n)}); err != nil {
			t.Fatal(err)
		}
	}
	cfgs := []LinkConfig{
		{Link: "v0", Addr: pfx("10.99.0.2/24"), Gateway: addr("10.99.0.1"), MTU: 1400},
		{Link: "v1", Addr: pfx("fd99::2/64"), Gateway: addr("fd99::1")},
	}
	for _, lc := range cfgs {
		if err := Apply(h, lc); err != nil {
			t.Fatal(err)
		}
	}
	first := snapshot(t, h)
	want := strings.Join([]string{
		"addr lo 127.0.0.1/8 brd <nil> flags 0x80 valid forever preferred forever",
		"addr lo ::1/128 brd <nil> flags 0x80 valid forever preferred forever",
		"addr v0 10.99.0.2/24 brd 10.99.0.255 flags 0x80 valid forever preferred forever",
		"addr v1 fd99::2/64 brd <nil> flags 0x82 valid forever preferred forever",
		"link lo up=true mtu=65536",
		"link v0 up=true mtu=1400",
		"link v1 up=true mtu=1500",
		"route 10.99.0.0/24 dev v0 gw <nil> src 10.99.0.2 proto 2 scope 253 flags 0x0 metric 0",
		"route default dev v0 gw 10.99.0.1 src <nil> proto 3 scope 0 flags 0x0 metric 0",
		"route default dev v1 gw fd99::1 src <nil> proto 3 scope 0 flags 0x0 metric 1024",
		"route fd99::/64 dev v1 gw <nil> src <nil> proto 2 scope 0 flags 0x0 metric 256",
	}, "\n")
	if first != want {
		t.Errorf("after the first Apply:\n%s\nwant:\n%s", first, want)
	}
	for _, lc := range cfgs {
		if err := Apply(h, lc); err != nil {
			t.Fatal(err)
		}
	}
	if second := snapshot(t, h); second != first {
		t.Errorf("the second Apply changed the namespace:\n%s\nwas:\n%s", second, first)
	}

	// A gateway outside the prefix is on-link and replaces the default route.
	if err := Apply(h, LinkConfig{Link: "v0", Addr: pfx("10.99.0.2/24"), Gateway: addr("10.98.0.1")}); err != nil {
		t.Fatal(err)
	}
	var defaults []string
	for _, line := range strings.Split(snapshot(t, h), "\n") {
		if strings.HasPrefix(line, "route default dev v0") {
			defaults = append(defaults, line)
		}
	}
	wantDef := fmt.Sprintf("route default dev v0 gw 10.98.0.1 src <nil> proto 3 scope 0 flags %#x metric 0", unix.RTNH_F_ONLINK)
	if len(defaults) != 1 || defaults[0] != wantDef {
		t.Errorf("default routes on v0 = %q, want [%q]", defaults, wantDef)
	}

	for _, tc := range []struct {
		lc   LinkConfig
		want string
	}{
		{LinkConfig{Link: "v0"}, "configure v0: no address"},
		{LinkConfig{Link: "nosuch0", Addr: pfx("10.99.0.2/24")}, "configure nosuch0: "},
		{LinkConfig{Link: "v0", Addr: pfx("10.99.0.2/24"), Gateway: addr("fd99::1")}, "not in the family"},
		{LinkConfig{Link: "v0", Addr: pfx("10.99.0.2/24"), MTU: 10}, "set MTU 10 on v0"},
	} {
		if err := Apply(h, tc.lc); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Apply(%+v) = %v, want %q", tc.lc, err, tc.want)
		}
	}
}
