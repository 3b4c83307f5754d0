package server

import (
	"net"
	"slices"
	"time"
)

// Negotiation slots shared fairly among source keys (a machine's link-
// layer address, else its IP address: neighbors.go). At most
// MaxNegotiating connections may be in the handshake at once
// (CVE-2024-7409). When all slots are taken, a connection from a key
// holding at least two slots fewer than the key holding the most takes
// that key's oldest slot: the connection holding it is cut off. So a
// flood of silent or slow connections from one machine fills the slots
// only until another machine connects. A key holding no slot at all takes
// the oldest slot of the table if that has been negotiating for
// minSlotAge (a real handshake takes milliseconds): so a flood from many
// keys holding one slot each (many invented link-layer addresses) does
// not lock a new machine out either. Otherwise the connection is refused,
// rather than the slots changing hands in a loop.

// minSlotAge is how long a slot must have been negotiating before a key
// holding none may take it.
const minSlotAge = time.Second

// negSlots is the table of connections in the handshake; the Server's mu
// guards it.
type negSlots struct {
	max    int
	key    func(net.Addr) string // the source key of a peer
	now    func() time.Time
	byAddr map[string][]*negSlot // by source key, oldest first
	n      int
}

// negSlot is one connection in the handshake.
type negSlot struct {
	nc      net.Conn
	addr    string    // its source key
	at      time.Time // when it took the slot
	evicted bool      // its slot was given to another key
}

func newNegSlots(max int, key func(net.Addr) string, now func() time.Time) *negSlots {
	return &negSlots{max: max, key: key, now: now, byAddr: map[string][]*negSlot{}}
}

// take gives nc a slot, cutting off another key's connection if the
// table is full (victim); it returns nil when nc must be refused, and the
// connection cut off, if any.
func (t *negSlots) take(nc net.Conn) (s *negSlot, cut *negSlot) {
	addr := t.key(nc.RemoteAddr())
	now := t.now()
	if t.n >= t.max {
		if cut = t.victim(addr, now); cut == nil {
			return nil, nil
		}
		t.drop(cut)
		cut.evicted = true
		cut.nc.SetDeadline(time.Unix(1, 0)) // ends its handshake at once
	}
	s = &negSlot{nc: nc, addr: addr, at: now}
	t.byAddr[addr] = append(t.byAddr[addr], s)
	t.n++
	return s, cut
}

// victim is the slot a connection from key addr may take from a full
// table, or nil.
func (t *negSlots) victim(addr string, now time.Time) *negSlot {
	heavy := ""
	var oldest *negSlot
	for a, list := range t.byAddr {
		if heavy == "" || len(list) > len(t.byAddr[heavy]) {
			heavy = a
		}
		if oldest == nil || list[0].at.Before(oldest.at) {
			oldest = list[0]
		}
	}
	mine := len(t.byAddr[addr])
	switch {
	case heavy != "" && len(t.byAddr[heavy]) >= mine+2:
		return t.byAddr[heavy][0]
	case mine == 0 && oldest != nil && now.Sub(oldest.at) >= minSlotAge:
		return oldest
	}
	return nil
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
