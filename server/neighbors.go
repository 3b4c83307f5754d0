package server

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
)

// Source keys: what the server's fair shares (the byte budget, the
// negotiation slots, the log rate) are counted by. A client on one of the
// server's own networks is keyed by its link-layer address, as the
// server's neighbour table (ARP, NDP) has it: a machine that adds 50 IP
// addresses to its NIC is still one machine with one share. A client
// behind a router (no neighbour entry for its address) and a loopback
// client are keyed by IP address. A machine that invents link-layer
// addresses too (macvlan) gets a share for each, unless the switch limits
// each port to one (port security).

// neighborTTL is how long a dump of the neighbour table answers for an
// address it has, or lacks.
const neighborTTL = time.Second

// neighbors caches the neighbour table: IP address to source key.
type neighbors struct {
	dump func() (map[netip.Addr]string, error)
	now  func() time.Time

	mu     sync.Mutex
	table  map[netip.Addr]string
	at     time.Time                // of the last dump
	absent map[netip.Addr]time.Time // missing from the dump at that time
}

func newNeighbors(dump func() (map[netip.Addr]string, error), now func() time.Time) *neighbors {
	return &neighbors{dump: dump, now: now, absent: map[netip.Addr]time.Time{}}
}

// key is a peer's source key: "ether/LLADDR" for a neighbour, else its
// IP address (IPv4-mapped IPv6 as IPv4), else the whole address. An
// address the last dump lacks makes a new dump (a peer that just
// connected is in the table by then: the server resolved it to answer),
// unless a dump lacked it within neighborTTL.
func (n *neighbors) key(a net.Addr) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return a.String()
	}
	ip := ap.Addr().Unmap().WithZone("")
	if n == nil || ip.IsLoopback() {
		return ip.String()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	now := n.now()
	k, ok := n.table[ip]
	fresh := now.Sub(n.at) < neighborTTL
	if ok && fresh {
		return k
	}
	if at, gone := n.absent[ip]; gone && now.Sub(at) < neighborTTL {
		return ip.String()
	}
	if t, err := n.dump(); err == nil {
		n.table, n.at = t, now
		for a, at := range n.absent {
			if now.Sub(at) >= neighborTTL {
				delete(n.absent, a)
			}
		}
		if k, ok = t[ip]; !ok {
			n.absent[ip] = now
		}
	}
	if ok {
		return k
	}
	return ip.String()
}

// dumpNeighbors reads the kernel's neighbour table: every entry with a
// link-layer address that is resolved, or was.
func dumpNeighbors() (map[netip.Addr]string, error) {
	list, err := netlink.NeighList(0, netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	t := make(map[netip.Addr]string, len(list))
	for _, e := range list {
		ip, ok := netip.AddrFromSlice(e.IP)
		if !ok || len(e.HardwareAddr) == 0 || e.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED|netlink.NUD_NOARP) != 0 {
			continue
		}
		zero := true
		for _, b := range e.HardwareAddr {
			zero = zero && b == 0
		}
		if !zero {
			t[ip.Unmap()] = "ether/" + e.HardwareAddr.String()
		}
	}
	return t, nil
}
