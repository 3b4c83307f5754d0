package boot

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/nbdboot/nbdboot/netcfg"
)

// leaseTimeout bounds the supervisor's DHCP exchange.
const leaseTimeout = time.Minute

// KeepLease keeps the boot's DHCP lease alive from the supervisor: the
// boot installed the address permanently, but a server whose lease runs
// out may give the address to another machine. PID 1's lease cannot
// cross the exec, so the supervisor asks again for the same address (a
// REQUEST the server grants as a renewal) and then renews at T1 with
// netcfg.KeepLeases until ctx ends. It does nothing without st.DHCPAddr.
// The link is the one of index st.IfIndex, whatever its name is by now.
func KeepLease(ctx context.Context, st State, log *Logger) error {
	if st.DHCPAddr == "" || st.Interface == "" {
		return nil
	}
	p, err := netip.ParsePrefix(st.DHCPAddr)
	if err != nil {
		return fmt.Errorf("keep the DHCP lease of %s: address %q: %w", st.Interface, st.DHCPAddr, err)
	}
	ifindex := st.IfIndex
	if ifindex == 0 {
		ifc, err := net.InterfaceByName(st.Interface)
		if err != nil {
			return fmt.Errorf("keep the DHCP lease of %s: %w", st.Interface, err)
		}
		ifindex = ifc.Index
	}
	dc := netcfg.DHCPConfig{RequestedIP: p.Addr(), Timeout: leaseTimeout, Logf: log.Debugf}
	for wait := time.Second; ; wait = min(wait*2, 5*time.Minute) {
		// By index: udev may have renamed the link since the boot (eth0 -> ens2).
		name, err := netcfg.InterfaceName(ifindex)
		var lease *netcfg.Lease
		if err == nil {
			if name != st.Interface {
				log.Printf("supervisor: %s (index %d) is now named %s", st.Interface, ifindex, name)
			}
			lease, err = netcfg.DHCP(ctx, name, dc)
		}
		if err == nil {
			if lease.Addr.Addr() != p.Addr() {
				log.Printf("supervisor: dhcp on %s: the server now offers %s; keeping %s (installed at boot)", name, lease.Addr, p)
			}
			log.Printf("supervisor: dhcp on %s: keeping lease %s", name, lease)
			res := netcfg.Result{Links: []netcfg.LinkResult{{Name: name, Index: ifindex, Lease: lease}}}
			return netcfg.KeepLeases(ctx, res, dc, func(f string, a ...any) { log.Printf("supervisor: "+f, a...) })
		}
		log.Printf("supervisor: dhcp on %s (index %d): %v; retrying in %s", st.Interface, ifindex, err, wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}
