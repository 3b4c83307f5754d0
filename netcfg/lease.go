package netcfg

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

// Infinite is the lease duration of a lease that never expires (option 51 =
// 0xffffffff).
const Infinite = time.Duration(1<<63 - 1)

// Lease is what a DHCPv4 server granted.
type Lease struct {
	Interface string
	Addr      netip.Prefix // your-IP and subnet mask
	Router    netip.Addr   // first router of option 3; invalid if none
	DNS       []netip.Addr // option 6
	NTP       []netip.Addr // option 42
	Hostname  string       // option 12; "" if not a valid host name
	Domain    string       // option 15; "" if not a valid domain name
	RootPath  string       // option 17 (nbdroot=dhcp)
	MTU       int          // option 26; 0 if not given
	ServerID  netip.Addr   // option 54
	Duration  time.Duration
	T1, T2    time.Duration // renewal and rebinding times after Acquired
	Acquired  time.Time

	raw *nclient4.Lease // for renewals
}

// Expires returns when the lease runs out (the zero time for Infinite).
func (l *Lease) Expires() time.Time {
	if l.Duration == Infinite {
		return time.Time{}
	}
	return l.Acquired.Add(l.Duration)
}

// String summarises the lease for log lines.
func (l *Lease) String() string {
	router := "none"
	if l.Router.IsValid() {
		router = l.Router.String()
	}
	return fmt.Sprintf("%s on %s from %s (router %s, lease %s)", l.Addr, l.Interface, l.ServerID, router, l.Duration)
}

// leaseFromACK decodes the options of a DHCPACK.
func leaseFromACK(iface string, ack *dhcpv4.DHCPv4, acquired time.Time) (*Lease, error) {
	if ack == nil {
		return nil, fmt.Errorf("dhcp on %s: no ACK", iface)
	}
	yi, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if !ok || yi.IsUnspecified() || yi.IsMulticast() || yi == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return nil, fmt.Errorf("dhcp on %s: ACK offers unusable address %v", iface, ack.YourIPAddr)
	}
	l := &Lease{Interface: iface, Acquired: acquired}
	bits := defaultPrefixLen(yi)
	if m := ack.Options.Get(dhcpv4.OptionSubnetMask); m != nil {
		ones, size := net.IPMask(m).Size()
		if len(m) != 4 || size != 32 || ones == 0 {
			return nil, fmt.Errorf("dhcp on %s: option 1 (subnet mask) %x is not a contiguous IPv4 mask", iface, m)
		}
		bits = ones
	}
	l.Addr = netip.PrefixFrom(yi, bits)
	for _, r := range ack.Router() {
		if a, ok := netip.AddrFromSlice(r.To4()); ok && !a.IsUnspecified() {
			l.Router = a
			break
		}
	}
	l.DNS = addrs4(ack.DNS())
	l.NTP = addrs4(ack.NTPServers())
	// Names go into sethostname(2) and resolv.conf: drop what is not a
	// plain name rather than write a server's newlines there.
	if h := ack.HostName(); checkHostname(h) == "" {
		l.Hostname = h
	}
	if d := ack.DomainName(); checkName(d, 253) == "" {
		l.Domain = d
	}
	l.RootPath = ack.RootPath()
	if sid, ok := netip.AddrFromSlice(ack.ServerIdentifier().To4()); ok {
		l.ServerID = sid
	}
	if m := ack.Options.Get(dhcpv4.OptionInterfaceMTU); m != nil {
		if len(m) != 2 {
			return nil, fmt.Errorf("dhcp on %s: option 26 (interface MTU) is %d bytes, expected 2", iface, len(m))
		}
		// RFC 2132 9.2: at least 68. Ignore nonsense rather than fail the boot.
		if mtu := int(binary.BigEndian.Uint16(m)); mtu >= 68 {
			l.MTU = mtu
		}
	}
	l.Duration, l.T1, l.T2 = leaseTimes(ack)
	return l, nil
}

// leaseTimes returns the lease time and T1/T2 (RFC 2131 4.4.5 defaults:
// 0.5 and 0.875 of the lease). A missing lease time is taken as one hour.
func leaseTimes(ack *dhcpv4.DHCPv4) (d, t1, t2 time.Duration) {
	raw := ack.Options.Get(dhcpv4.OptionIPAddressLeaseTime)
	if len(raw) == 4 && binary.BigEndian.Uint32(raw) == 0xffffffff {
		return Infinite, Infinite, Infinite
	}
	d = ack.IPAddressLeaseTime(time.Hour)
	if d <= 0 {
		d = time.Hour
	}
	t1 = ack.IPAddressRenewalTime(d / 2)
	t2 = ack.IPAddressRebindingTime(d * 7 / 8)
	if t1 <= 0 || t1 > d {
		t1 = d / 2
	}
	if t2 < t1 || t2 > d {
		t2 = t1 + (d-t1)*3/4
	}
	return d, t1, t2
}

func addrs4(ips []net.IP) []netip.Addr {
	var out []netip.Addr
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip.To4()); ok && !a.IsUnspecified() {
			out = append(out, a)
		}
	}
	return out
}
