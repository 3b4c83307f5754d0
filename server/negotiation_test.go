package server

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// addrConn is a net.Conn with a remote address whose deadline is seen.
type addrConn struct {
	net.Conn
	remote   net.Addr
	deadline time.Time
}

func (c *addrConn) RemoteAddr() net.Addr               { return c.remote }
func (c *addrConn) SetDeadline(t time.Time) error      { c.deadline = t; return nil }
func (c *addrConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *addrConn) SetWriteDeadline(t time.Time) error { return nil }

func from(ip string, port int) *addrConn {
	return &addrConn{remote: &net.TCPAddr{IP: net.ParseIP(ip), Port: port}}
}

// TestNegSlotsFair: a full table gives a new address the oldest slot of
// the address holding the most, and refuses an address already holding
// as many as any other.
func TestNegSlotsFair(t *testing.T) {
	now := time.Unix(1000, 0)
	tab := newNegSlots(4, (*neighbors)(nil).key, func() time.Time { return now })
	var flood []*negSlot
	for i := range 4 {
		s, cut := tab.take(from("10.0.0.1", 1000+i))
		if s == nil || cut != nil {
			t.Fatalf("slot %d: %v, cut %v", i, s, cut)
		}
		flood = append(flood, s)
	}
	if s, _ := tab.take(from("10.0.0.1", 2000)); s != nil {
		t.Fatal("the flooding address got a fifth slot")
	}
	s, cut := tab.take(from("::ffff:10.0.0.2", 1)) // IPv4-mapped: address 10.0.0.2
	if s == nil || cut != flood[0] || !flood[0].evicted || cut.nc.(*addrConn).deadline.After(time.Unix(2, 0)) {
		t.Fatalf("new address: slot %v, cut %v (want the oldest of the flood, its deadline passed)", s, cut)
	}
	if s.addr != "10.0.0.2" || len(tab.byAddr["10.0.0.1"]) != 3 || tab.n != 4 {
		t.Fatalf("table after the cut: %v, n %d", tab.byAddr, tab.n)
	}
	tab.release(flood[0]) // the cut connection's handshake ends: no second release
	if tab.n != 4 {
		t.Fatalf("n %d after releasing a cut slot", tab.n)
	}
	// 10.0.0.3 takes another of the flood's; then 10.0.0.1 has 2 and
	// 10.0.0.2 and .3 one each: a fourth address takes one more of .1's.
	for _, ip := range []string{"10.0.0.3", "10.0.0.4"} {
		if s, cut := tab.take(from(ip, 1)); s == nil || cut == nil || cut.addr != "10.0.0.1" {
			t.Fatalf("%s: slot %v, cut %v", ip, s, cut)
		}
	}
	// Now every address holds one: a fifth address is refused (no
	// address holds two more than it).
	if s, _ := tab.take(from("10.0.0.5", 1)); s != nil {
		t.Fatal("address took a slot from an address holding only one more than it")
	}
	tab.release(s)
	if s, cut := tab.take(from("10.0.0.5", 1)); s == nil || cut != nil {
		t.Fatalf("after a release: slot %v, cut %v", s, cut)
	}
}

// TestNegSlotsManyKeys: a full table of keys holding one slot each
// refuses a new key until the oldest slot has negotiated for minSlotAge;
// then the new key takes it, and a key cut off that comes back takes the
// next oldest, never the new key's young slot.
func TestNegSlotsManyKeys(t *testing.T) {
	now := time.Unix(1000, 0)
	tab := newNegSlots(4, (*neighbors)(nil).key, func() time.Time { return now })
	var flood []*negSlot
	for i := range 4 {
		s, _ := tab.take(from(fmt.Sprintf("10.0.0.%d", 1+i), 1))
		flood = append(flood, s)
		now = now.Add(time.Millisecond)
	}
	if s, _ := tab.take(from("10.0.1.1", 1)); s != nil {
		t.Fatal("a new key cut a slot negotiating for less than minSlotAge")
	}
	now = now.Add(minSlotAge)
	mine, cut := tab.take(from("10.0.1.1", 1))
	if mine == nil || cut != flood[0] {
		t.Fatalf("after minSlotAge: slot %v, cut %v, want the oldest", mine, cut)
	}
	if s, cut := tab.take(from("10.0.0.1", 2)); s == nil || cut != flood[1] {
		t.Fatalf("the key cut off, back: slot %v, cut %v, want the next oldest", s, cut)
	}
	if s, cut := tab.take(from("10.0.0.1", 3)); s != nil || cut != nil {
		t.Fatalf("a key holding a slot took another: slot %v, cut %v", s, cut)
	}
	if mine.evicted {
		t.Fatal("the new key's young slot was cut")
	}
}
