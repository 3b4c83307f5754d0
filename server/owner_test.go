package server

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/cow"
	"github.com/nbdboot/nbdboot/protocol"
)

// staticLeases is a Leases of fixed MAC -> address pairs.
type staticLeases map[string]netip.Addr

func (l staticLeases) AddressOf(id string) (netip.Addr, bool) {
	a, ok := l[id]
	return a, ok
}

// TestOverlayOwnership: an overlay in use from one address is refused to
// another until its last connection there ends; pins, pinned_only, the
// DHCP leases hook and allow-lists refuse at the handshake with
// ERR_POLICY, and LIST hides exports an address may not use.
func TestOverlayOwnership(t *testing.T) {
	base, m := patternBase(t)
	tab, err := OpenExports([]ExportConfig{
		{Name: "lab", Path: base, COW: COWEphemeral, Pin: map[string][]string{"pc9": {"127.0.0.4"}}},
		{Name: "strict", Path: base, COW: COWEphemeral, PinnedOnly: true, Pin: map[string][]string{"pc1": {"127.0.0.0/30"}}},
		{Name: "staff", Path: base, ReadOnly: true, Allow: []string{"127.0.0.2", "10.0.0.0/8"}},
	}, WithOverlays(m), WithLeases(staticLeases{"52:54:00:00:00:01": netip.MustParseAddr("127.0.0.6")}))
	if err != nil {
		t.Fatal(err)
	}
	ts, released, refused := policyServer(t, tab, m)
	// pc1 in use from .2: refused to .3, even to read.
	owner := goClient(t, ts.addr, "127.0.0.2", "lab/pc1")
	mine := bytes.Repeat([]byte{0x5a}, 4096)
	if _, err := owner.WriteAt(mine, 0, protocol.CmdFlagFUA); err != nil {
		t.Fatal(err)
	}
	refused("127.0.0.3", "lab/pc1", "in use from another address")
	second := goClient(t, ts.addr, "127.0.0.2", "lab/pc1") // the owner's own second connection
	second.Disconnect()
	owner.Disconnect()
	waitReleased(t, released, 2)
	// Free again: .3 may take it (the ID is not authenticated).
	c := goClient(t, ts.addr, "127.0.0.3", "lab/pc1")
	got := make([]byte, 4096)
	if _, err := c.ReadAt(got, 0); err != nil || !bytes.Equal(got, mine) {
		t.Errorf("lab/pc1 after its owner left: %v", err)
	}
	c.Disconnect()

	refused("127.0.0.2", "lab/127.0.0.3", "another machine's address")
	refused("127.0.0.2", "lab/pc9", "pinned to other addresses")
	goClient(t, ts.addr, "127.0.0.4", "lab/pc9").Disconnect()
	refused("127.0.0.2", "lab/52:54:00:00:00:01", "leased another address")
	goClient(t, ts.addr, "127.0.0.6", "lab/52:54:00:00:00:01").Disconnect()
	refused("127.0.0.2", "strict/pc2", "not pinned")
	refused("127.0.0.2", "strict", "not pinned") // plain name: the ID is the address
	goClient(t, ts.addr, "127.0.0.2", "strict/pc1").Disconnect()
	refused("127.0.0.5", "strict/pc1", "pinned to other addresses")

	// Allow-lists: refused, and not listed.
	refused("127.0.0.3", "staff", "not allowed from 127.0.0.3")
	goClient(t, ts.addr, "127.0.0.2", "staff").Disconnect()
	for from, want := range map[string]string{"127.0.0.2": "lab strict staff", "127.0.0.3": "lab strict"} {
		d := goListFrom(t, ts.addr, from)
		var names []string
		for _, e := range d {
			names = append(names, e.Name)
		}
		if got := strings.Join(names, " "); got != want {
			t.Errorf("LIST from %s: %s, want %s", from, got, want)
		}
	}
}

// TestAccessConfigErrors: bad addresses and pins on a plain export are
// refused with the export named.
func TestAccessConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		ec   ExportConfig
		want string
	}{
		{ExportConfig{Name: "a", Path: "/x", Allow: []string{"10.0.0.0/33"}}, `export "a": allow: "10.0.0.0/33"`},
		{ExportConfig{Name: "a", Path: "/x", Pin: map[string][]string{"pc1": {"10.0.0.1"}}}, "cow exports only"},
		{ExportConfig{Name: "a", Path: "/x", COW: COWEphemeral, Pin: map[string][]string{"pc1": {}}}, `pin "pc1"`},
		{ExportConfig{Name: "a", Path: "/x", COW: COWEphemeral, Pin: map[string][]string{"pc1": {"host"}}}, `pin "pc1"`},
	} {
		if err := tt.ec.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.ec, err, tt.want)
		}
	}
}

// goListFrom lists the exports (NBD_OPT_LIST) from local address from.
func goListFrom(t *testing.T, addr, from string) []protocol.ExportInfo {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	list, err := protocol.ClientList(nc)
	if err != nil {
		t.Fatalf("LIST from %s: %v", from, err)
	}
	return list
}

// policyServer serves tab (overlays kept by m) and returns a channel that
// receives when a connection released its export, and refused, which
// checks that a client at from asking for export is refused with
// ERR_POLICY for the reason why.
func policyServer(t *testing.T, tab *Exports, m *cow.Manager) (*testServer, chan struct{}, func(from, export, why string)) {
	released := make(chan struct{}, 16)
	ts := startServer(t, tab, testLimits(), func(s *Server) { s.onReleased = func() { released <- struct{}{} } })
	t.Cleanup(func() { m.Close(); tab.Close() })
	refused := func(from, export, why string) {
		t.Helper()
		_, err := goClientErr(t, ts.addr, from, export)
		if err == nil || !strings.Contains(err.Error(), "ERR_POLICY") || !strings.Contains(err.Error(), why) {
			t.Errorf("%s from %s: %v; want ERR_POLICY: %s", export, from, err, why)
		}
	}
	return ts, released, refused
}
