package pxe

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/nbdboot/nbdboot/internal/ratelog"
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

// TestLeasePolicy: a client inventing MAC addresses takes new addresses
// only at new_leases_per_minute, holds at most maxPendingOffers offers
// (which expire after offerTTL), and never the addresses kept for the
// listed machines, which get theirs (by OFFER or straight REQUEST) while
// the range is flooded; known_only refuses every other MAC; a client
// renewing in a loop does not rewrite the file.
func TestLeasePolicy(t *testing.T) {
	now := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	path := filepath.Join(t.TempDir(), "pxe-leases.json")
	p, err := (&DHCPConfig{RangeStart: "10.0.3.100", RangeEnd: "10.0.3.199"}).pool()
	if err != nil {
		t.Fatal(err)
	}
	l, err := openLeases(path, p, time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	listed := []string{"52:54:00:9e:00:01", "52:54:00:9e:00:02", "52:54:00:9e:00:03"}
	l.policy = leasePolicy{listed: map[string]bool{}, gate: ratelog.NewGate(10, clock)}
	for _, m := range listed {
		l.policy.listed[m] = true
	}
	invented := func(i int) string { return fmt.Sprintf("02:00:00:00:%02x:%02x", i>>8, i&0xff) }

	// Offers never taken: at most maxPendingOffers at once, and they
	// are gone after offerTTL. The gate is not used by refused offers.
	l.policy.gate = nil
	offered := 0
	for i := range 200 {
		if ip, err := l.offer(invented(i)); ip != nil {
			offered++
		} else if !errors.Is(err, errTooManyOffers) {
			t.Fatalf("offer %d refused with %v, want errTooManyOffers", i, err)
		}
	}
	if offered != maxPendingOffers {
		t.Fatalf("%d offers wait at once, want %d", offered, maxPendingOffers)
	}
	now = now.Add(offerTTL + time.Second)
	if ip, err := l.offer(invented(1000)); ip == nil {
		t.Fatalf("offers did not expire: %v", err)
	}
	now = now.Add(offerTTL + time.Second)

	// New leases by straight REQUESTs: 10 a minute, in a burst of 10.
	l.policy.gate = ratelog.NewGate(10, clock)
	acked := func(mac string, v uint32) (bool, error) {
		t.Helper()
		return l.ack(mac, ip4(p.first+v))
	}
	got := 0
	for i := range 100 {
		ok, err := acked(invented(2000+i), uint32(i))
		if ok {
			got++
		} else if !errors.Is(err, errNewLeaseRate) {
			t.Fatalf("request %d refused with %v, want errNewLeaseRate", i, err)
		}
	}
	if got != 10 {
		t.Fatalf("%d new leases in a burst, want 10", got)
	}
	// A lifted rate: the flood takes every address but those kept for
	// the three listed machines.
	l.policy.gate = nil
	got = 0
	for i := range 200 {
		if ip, _ := l.offer(invented(3000 + i)); ip != nil {
			if ok, err := l.ack(invented(3000+i), ip); !ok || err != nil {
				t.Fatalf("ack of an offer: %v %v", ok, err)
			}
			got++
		}
	}
	if got != 100-10-len(listed) {
		t.Fatalf("the flood took %d addresses, want %d", got, 100-10-len(listed))
	}
	if _, err := l.offer(invented(9999)); !errors.Is(err, errReserved) {
		t.Fatalf("offer to another invented MAC: %v, want errReserved", err)
	}
	ip, err := l.offer(listed[0])
	if ip == nil {
		t.Fatalf("a listed machine got no offer: %v", err)
	}
	if ok, err := l.ack(listed[0], ip); !ok || err != nil {
		t.Fatalf("a listed machine's REQUEST: %v %v", ok, err)
	}
	var last net.IP
	for v := p.first; v <= p.last; v++ {
		if e := l.byIP[ip4(v).String()]; e == nil {
			last = ip4(v)
		}
	}
	if ok, err := l.ack(listed[1], last); !ok || err != nil {
		t.Fatalf("a listed machine's straight REQUEST for a free address: %v %v", ok, err)
	}
	if ip, err := l.offer(listed[2]); ip == nil {
		t.Fatalf("the last listed machine got no offer: %v", err)
	}
	if ip, err := l.offer(invented(10000)); ip != nil || !errors.Is(err, errRangeFull) {
		t.Fatalf("a full range offered %v (%v)", ip, err)
	}

	// Renewals in quick succession do not rewrite the file.
	before, _ := os.Stat(path)
	os.Remove(path)
	if ok, err := l.ack(listed[0], ip); !ok || err != nil {
		t.Fatalf("renewal: %v %v", ok, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) || before == nil {
		t.Fatalf("a renewal a moment after the lease wrote the file (%v)", err)
	}

	l.policy.knownOnly = true
	l.policy.gate = ratelog.NewGate(10, clock)
	now = now.Add(2 * time.Hour) // every lease expired
	if _, err := l.offer(invented(20000)); !errors.Is(err, errNotListed) {
		t.Fatalf("known_only: offer to an unlisted MAC: %v", err)
	}
	if ip, err := l.offer(listed[1]); ip == nil {
		t.Fatalf("known_only: a listed machine got no offer: %v", err)
	}
}
