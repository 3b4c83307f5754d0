package pxe

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/nbdboot/nbdboot/internal/tomlx"
)

// TestLeases: addresses in order, a client keeps its own, a full range
// offers nothing, an expired lease is reused, and a reopened table (a
// restart) hands every client its address again.
func TestLeases(t *testing.T) {
	now := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	path := filepath.Join(t.TempDir(), "state", "pxe-leases.json")
	p, err := (&DHCPConfig{RangeStart: "10.0.3.100", RangeEnd: "10.0.3.101"}).pool()
	if err != nil {
		t.Fatal(err)
	}
	l, err := openLeases(path, p, time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	ack := func(l *leases, mac, ip string) bool {
		t.Helper()
		ok, err := l.ack(mac, net.ParseIP(ip))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if got, _ := l.offer("a"); !got.Equal(net.ParseIP("10.0.3.100")) {
		t.Fatalf("first offer %s", got)
	}
	if !ack(l, "a", "10.0.3.100") || !ack(l, "b", "10.0.3.101") {
		t.Fatal("acks refused")
	}
	if ack(l, "c", "10.0.3.100") {
		t.Error("c got a's address")
	}
	if ack(l, "c", "10.0.3.5") {
		t.Error("an address outside the range was acknowledged")
	}
	if got, _ := l.offer("c"); got != nil {
		t.Errorf("full range offered %s", got)
	}
	if got, _ := l.offer("a"); !got.Equal(net.ParseIP("10.0.3.100")) {
		t.Errorf("a offered %s, want its own", got)
	}
	r, err := openLeases(path, p, time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := r.offer("b"); !got.Equal(net.ParseIP("10.0.3.101")) {
		t.Errorf("after a restart b offered %s, want 10.0.3.101", got)
	}
	now = now.Add(2 * time.Hour)
	if got, _ := r.offer("c"); !got.Equal(net.ParseIP("10.0.3.100")) {
		t.Errorf("after expiry c offered %s, want 10.0.3.100", got)
	}
}

// TestAnswerFullDHCP: in full-DHCP mode a PXE client's OFFER carries an
// address, the netmask and its boot file; the ACK leases it; a plain
// client gets an address without boot options; a REQUEST for another
// server's offer gets nothing, one for a taken address a NAK.
func TestAnswerFullDHCP(t *testing.T) {
	s, _ := testService(t, Machine{Export: "lab"})
	s.cfg.DHCP = &DHCPConfig{RangeStart: "10.0.3.100", RangeEnd: "10.0.3.110", Lease: tomlx.Duration(time.Hour)}
	p, _ := s.cfg.DHCP.pool()
	var err error
	if s.leases, err = openLeases(filepath.Join(t.TempDir(), "l.json"), p, time.Hour, time.Now); err != nil {
		t.Fatal(err)
	}
	offer := s.answer(request(t, macKnown, dhcpv4.MessageTypeDiscover, 0, ""), false)
	if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer || !offer.YourIPAddr.Equal(net.ParseIP("10.0.3.100")) ||
		offer.BootFileName != "52-54-00-9e-00-01/undionly.kpxe" || offer.SubnetMask().String() != "ffffff00" {
		t.Fatalf("offer = %v", offer)
	}
	req := request(t, macKnown, dhcpv4.MessageTypeRequest, 0, "")
	req.UpdateOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr))
	req.UpdateOption(dhcpv4.OptServerIdentifier(testIP))
	if ack := s.answer(req, false); ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || !ack.YourIPAddr.Equal(offer.YourIPAddr) {
		t.Fatalf("ack = %v", ack)
	}
	if a, ok := s.AddressOf("52-54-00-9E-00-01"); !ok || a.String() != "10.0.3.100" {
		t.Errorf("AddressOf(the leased MAC) = %v %v, want 10.0.3.100", a, ok)
	}
	if _, ok := s.AddressOf(macOther.String()); ok {
		t.Error("AddressOf(a MAC without a lease) found one")
	}
	plain := s.answer(request(t, macOther, dhcpv4.MessageTypeDiscover, -1, ""), false)
	if plain == nil || !plain.YourIPAddr.Equal(net.ParseIP("10.0.3.101")) || plain.BootFileName != "" {
		t.Errorf("plain client's offer = %v", plain)
	}
	other := request(t, macOther, dhcpv4.MessageTypeRequest, -1, "")
	other.UpdateOption(dhcpv4.OptServerIdentifier(net.ParseIP("10.0.3.254")))
	other.UpdateOption(dhcpv4.OptRequestedIPAddress(net.ParseIP("10.0.3.101")))
	if got := s.answer(other, false); got != nil {
		t.Errorf("answered a request to another server: %v", got)
	}
	taken := request(t, macOther, dhcpv4.MessageTypeRequest, -1, "")
	taken.UpdateOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr))
	if got := s.answer(taken, false); got == nil || got.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("request for a taken address: %v, want a NAK", got)
	}
}
