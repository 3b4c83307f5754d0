package main

import (
	"net/netip"
	"sync/atomic"

	"github.com/nbdboot/nbdboot/pxe"
)

// pxeLeases is server.Leases for the exports, answered by the PXE
// service's full-DHCP mode once it runs (the exports open first).
type pxeLeases struct{ svc atomic.Pointer[pxe.Service] }

func (l *pxeLeases) AddressOf(clientID string) (netip.Addr, bool) {
	s := l.svc.Load()
	if s == nil {
		return netip.Addr{}, false
	}
	return s.AddressOf(clientID)
}
