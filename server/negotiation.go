package server

import (
	"net"
	"net/netip"
	"slices"
	"time"
)

// Negotiation slots shared fairly among source addresses. At most
// MaxNegotiating connections may be in the handshake at once
// (CVE-2024-7409). When all slots are taken, a connection from an address
// holding at least two slots fewer than the address holding the most
// takes that address's oldest slot: the connection holding it is cut off.
// So a flood of silent or slow connections from one address fills the
// slots only until another address connects, and an address can always
// negotiate unless every address holds about as many slots as it does
// (then it is refused, rather than the slots changing hands in a loop).

// negSlots is the table of connections in the handshake; the Server's mu
// guards it.
type negSlots struct {
	max    int
	byAddr map[string][]*negSlot // oldest first
	n      int
}

// negSlot is one connection in the handshake.
type negSlot struct {
	nc      net.Conn
	addr    string
	evicted bool // its slot was given to another address
}

func newNegSlots(max int) *negSlots {
	return &negSlots{max: max, byAddr: map[string][]*negSlot{}}
}

// sourceAddr is the address slots are shared by: the peer's IP (IPv4-
// mapped IPv6 as IPv4), or the whole address when it has no port.
func sourceAddr(a net.Addr) string {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap().WithZone("").String()
	}
	return a.String()
}

// take gives nc a slot, cutting off another address's oldest connection
// if the table is full and that address holds more; it returns nil when
// nc must be refused, and the connection cut off, if any.
func (t *negSlots) take(nc net.Conn) (s *negSlot, cut *negSlot) {
	addr := sourceAddr(nc.RemoteAddr())
	if t.n >= t.max {
		heavy := ""
		for a, list := range t.byAddr {
			if heavy == "" || len(list) > len(t.byAddr[heavy]) {
				heavy = a
			}
		}
		if heavy == "" || len(t.byAddr[heavy]) < len(t.byAddr[addr])+2 {
			return nil, nil
		}
		cut = t.byAddr[heavy][0]
		t.drop(cut)
		cut.evicted = true
		cut.nc.SetDeadline(time.Unix(1, 0)) // ends its handshake at once
	}
	s = &negSlot{nc: nc, addr: addr}
	t.byAddr[addr] = append(t.byAddr[addr], s)
	t.n++
	return s, cut
}

// release frees s's slot when its handshake has ended (unless it was
// given away already).
func (t *negSlots) release(s *negSlot) {
	if !s.evicted {
		t.drop(s)
	}
}

func (t *negSlots) drop(s *negSlot) {
	list := t.byAddr[s.addr]
	if i := slices.Index(list, s); i >= 0 {
		list = slices.Delete(list, i, i+1)
	}
	if len(list) == 0 {
		delete(t.byAddr, s.addr)
	} else {
		t.byAddr[s.addr] = list
	}
	t.n--
}

// each calls f for every connection in the handshake.
func (t *negSlots) each(f func(net.Conn)) {
	for _, list := range t.byAddr {
		for _, s := range list {
			f(s.nc)
		}
	}
}
