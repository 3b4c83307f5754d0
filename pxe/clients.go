package pxe

import (
	"net"
	"net/netip"
	"sync"
)

// maxClients caps the address → MAC table: a machine fetching with many
// source addresses evicts the oldest entries, never grows it further.
const maxClients = 4096

// clients remembers which MAC address last fetched its boot files (or
// took a lease) from each IP address, so that the NBD connection that
// follows can be logged with the machine's MAC.
type clients struct {
	mu    sync.Mutex
	byIP  map[string]string
	order []string // insertion order, for eviction
}

// note records that ip belongs to mac.
func (c *clients) note(ip net.IP, mac net.HardwareAddr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byIP == nil {
		c.byIP = make(map[string]string)
	}
	k := ip.String()
	if _, ok := c.byIP[k]; !ok {
		if len(c.order) >= maxClients {
			delete(c.byIP, c.order[0])
			c.order = c.order[1:]
		}
		c.order = append(c.order, k)
	}
	c.byIP[k] = mac.String()
}

// MACOf is the MAC address of the machine that last fetched its boot
// files from addr's IP address ("IP" or "IP:PORT"), or "".
func (s *Service) MACOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return ""
	}
	s.clients.mu.Lock()
	defer s.clients.mu.Unlock()
	return s.clients.byIP[ip.String()]
}

// AddressOf is the address this service's full-DHCP mode leased to
// clientID, a MAC address (any case, : or -): server.Leases, which pins
// that client's overlay to its address. In proxyDHCP mode there are no
// leases here, and the boot files' fetches (which name any MAC) pin
// nothing.
func (s *Service) AddressOf(clientID string) (netip.Addr, bool) {
	if s.leases == nil {
		return netip.Addr{}, false
	}
	mac, err := net.ParseMAC(clientID)
	if err != nil || len(mac) != 6 {
		return netip.Addr{}, false
	}
	ip, ok := s.leases.addressOf(mac.String())
	if !ok {
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(ip)
	return a, ok
}
