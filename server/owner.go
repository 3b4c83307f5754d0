package server

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/nbdboot/nbdboot/protocol"
)

// Who may use an export and an overlay. The trust model (README,
// "Trust"): a client's address is what the network says it is, a client
// ID is whatever the client sends. So nbdserve checks what it can from
// the address: an export's allow-list (allow), the addresses an overlay's
// client ID is pinned to (pin, or the address nbdserve's own DHCP server
// leased to that MAC: Leases), that an ID which is an IP address is asked
// for from that address only, and that an overlay in use from one address
// is refused to any other until its last connection there has ended. All
// are checked at the handshake (a refusal is NBD_REP_ERR_POLICY, which
// the client sees) and again when the connection starts.

// Leases is the hook by which nbdserve's DHCP server (package pxe) pins
// the overlay of a client ID that is a MAC address to the address it
// leased to that MAC.
type Leases interface {
	// AddressOf returns the address leased to clientID, if any.
	AddressOf(clientID string) (netip.Addr, bool)
}

// WithLeases pins client IDs to the addresses l leased them.
func WithLeases(l Leases) ExportsOption {
	return func(t *Exports) { t.leases = l }
}

// access is an export's parsed allow and pin settings.
type access struct {
	allow      []netip.Prefix
	pins       map[string][]netip.Prefix
	pinnedOnly bool
	key        string // the settings as text, to compare on Update
}

// parseAccess parses ec's allow, pin and pinned_only settings.
func parseAccess(ec ExportConfig) (access, error) {
	a := access{pinnedOnly: ec.PinnedOnly}
	var err error
	if a.allow, err = parsePrefixes(ec.Allow); err != nil {
		return access{}, fmt.Errorf("export %q: allow: %w", ec.Name, err)
	}
	if len(ec.Pin) > 0 || ec.PinnedOnly {
		if ec.COW == "" {
			return access{}, fmt.Errorf("export %q: pin and pinned_only apply to cow exports only", ec.Name)
		}
		a.pins = map[string][]netip.Prefix{}
	}
	for id, list := range ec.Pin {
		if a.pins[id], err = parsePrefixes(list); err != nil || len(list) == 0 {
			return access{}, fmt.Errorf("export %q: pin %q: want addresses or networks: %v", ec.Name, id, err)
		}
	}
	a.key = fmt.Sprint(a.allow, a.pins, a.pinnedOnly) // fmt sorts map keys
	return a, nil
}

// parsePrefixes parses addresses ("10.0.0.21") and networks
// ("10.0.0.0/24").
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("%q: want an address or a network (CIDR)", s)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func within(list []netip.Prefix, a netip.Addr) bool {
	return slices.ContainsFunc(list, func(p netip.Prefix) bool { return p.Contains(a) })
}

// peerAddr is a peer's IP address (IPv4-mapped IPv6 as IPv4); false
// without one.
func peerAddr(peer net.Addr) (netip.Addr, bool) {
	if peer == nil {
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(peer.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap().WithZone(""), true
}

// overlayUser records the address an overlay is in use from.
type overlayUser struct {
	addr  netip.Addr
	conns int
}

// checkPeer refuses peer what r (asked for as name) may not give it: an
// export outside its allow-list, another address's overlay. A nil peer
// (the admin tool, tests) is not checked. The caller holds t.mu.
func (t *Exports) checkPeer(name string, r resolved, peer net.Addr) error {
	if peer == nil {
		return nil
	}
	a, ok := peerAddr(peer)
	if !ok {
		return fmt.Errorf("export %q: client address %q: %w", name, peer, protocol.ErrPolicy)
	}
	if acc := r.e.acc; len(acc.allow) > 0 && !within(acc.allow, a) {
		return fmt.Errorf("export %q: not allowed from %s: %w", name, a, protocol.ErrPolicy)
	}
	client := r.client
	if client == "" {
		if r.e.cow == "" {
			return nil
		}
		client = a.String() // plain NAME: the address's own overlay
	}
	if id, err := netip.ParseAddr(client); err == nil && id.Unmap() != a {
		return fmt.Errorf("export %q: client ID %s is another machine's address: %w", name, client, protocol.ErrPolicy)
	}
	if pins, ok := r.e.acc.pins[client]; ok {
		if !within(pins, a) {
			return fmt.Errorf("export %q: client ID %q is pinned to other addresses: %w", name, client, protocol.ErrPolicy)
		}
	} else if r.e.acc.pinnedOnly {
		return fmt.Errorf("export %q: client ID %q is not pinned to any address (pinned_only): %w", name, client, protocol.ErrPolicy)
	}
	if t.leases != nil {
		if leased, ok := t.leases.AddressOf(client); ok && leased.Unmap() != a {
			return fmt.Errorf("export %q: client ID %q was leased another address: %w", name, client, protocol.ErrPolicy)
		}
	}
	if u := t.users[r.e.Name+"/"+client]; u != nil && u.conns > 0 && u.addr != a {
		return fmt.Errorf("export %q: overlay in use from another address: %w", name, protocol.ErrPolicy)
	}
	return t.checkCaps(name, r.e, client, a)
}

// useOverlay counts a connection of overlay key from peer; the caller
// holds t.mu for writing and has checked peer.
func (t *Exports) useOverlay(key string, peer net.Addr) {
	a, ok := peerAddr(peer)
	if !ok {
		return
	}
	u := t.users[key]
	if u == nil {
		u = &overlayUser{addr: a}
		if t.users == nil {
			t.users, t.usedBy = map[string]*overlayUser{}, map[netip.Addr]int{}
		}
		t.users[key] = u
		t.usedBy[a]++
	}
	u.conns++
}

// leaveOverlay ends what useOverlay counted.
func (t *Exports) leaveOverlay(key string, peer net.Addr) {
	if _, ok := peerAddr(peer); !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if u := t.users[key]; u != nil {
		if u.conns--; u.conns <= 0 {
			delete(t.users, key)
			if t.usedBy[u.addr]--; t.usedBy[u.addr] <= 0 {
				delete(t.usedBy, u.addr)
			}
		}
	}
}

// PeerResolver is a Resolver that answers the handshake knowing the
// client's address: the Server uses it when its Resolver has it
// (connProvider).
type PeerResolver interface {
	ExportFrom(name string, peer net.Addr) (protocol.ExportInfo, error)
	ExportsFrom(peer net.Addr) []protocol.ExportInfo
}
