package netcfg

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// LinkConfig is what Apply installs on one link.
type LinkConfig struct {
	Link    string       // interface name
	Addr    netip.Prefix // address and prefix length; installed permanently
	Gateway netip.Addr   // default route via this gateway; invalid means none
	MTU     int          // 0 leaves the MTU alone
}

// Apply brings lo and the link up and installs the address, the MTU and the
// default route with idempotent netlink calls (AddrReplace, RouteReplace), so
// applying the same LinkConfig twice changes nothing. The address has
// infinite valid and preferred lifetimes (see the lease policy in the package
// documentation); IPv6 addresses skip duplicate address detection. A gateway
// outside the address's prefix is reached with an on-link route.
func Apply(h *netlink.Handle, lc LinkConfig) error {
	if !lc.Addr.IsValid() {
		return fmt.Errorf("configure %s: no address", lc.Link)
	}
	if lc.Gateway.IsValid() && lc.Gateway.Is4() != lc.Addr.Addr().Is4() {
		return fmt.Errorf("configure %s: gateway %s is not in the family of %s", lc.Link, lc.Gateway, lc.Addr)
	}
	if err := setUp(h, "lo"); err != nil {
		return err
	}
	l, err := h.LinkByName(lc.Link)
	if err != nil {
		return fmt.Errorf("configure %s: %w", lc.Link, err)
	}
	if lc.MTU > 0 && l.Attrs().MTU != lc.MTU {
		if err := h.LinkSetMTU(l, lc.MTU); err != nil {
			return fmt.Errorf("set MTU %d on %s: %w", lc.MTU, lc.Link, err)
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("set link %s up: %w", lc.Link, err)
		}
	}
	a := &netlink.Addr{IPNet: ipNet(lc.Addr)}
	if lc.Addr.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	if err := h.AddrReplace(l, a); err != nil {
		return fmt.Errorf("add address %s to %s: %w", lc.Addr, lc.Link, err)
	}
	if !lc.Gateway.IsValid() {
		return nil
	}
	r := defaultRoute(l.Attrs().Index, lc.Addr, lc.Gateway)
	if err := h.RouteReplace(r); err != nil {
		return fmt.Errorf("add default route via %s dev %s: %w", lc.Gateway, lc.Link, err)
	}
	return nil
}

func defaultRoute(index int, p netip.Prefix, gw netip.Addr) *netlink.Route {
	bits := 32
	if gw.Is6() {
		bits = 128
	}
	r := &netlink.Route{
		LinkIndex: index,
		Dst:       &net.IPNet{IP: net.IP(make([]byte, bits/8)), Mask: net.CIDRMask(0, bits)},
		Gw:        net.IP(gw.AsSlice()),
		Protocol:  unix.RTPROT_BOOT,
		Table:     unix.RT_TABLE_MAIN,
	}
	if !p.Masked().Contains(gw) {
		r.Flags = int(netlink.FLAG_ONLINK)
	}
	return r
}

func ipNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}
