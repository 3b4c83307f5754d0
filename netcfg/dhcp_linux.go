package netcfg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

// DHCPConfig is how the DHCPv4 client identifies itself and how long it
// tries.
type DHCPConfig struct {
	ClientID    []byte     // option 61; nil sends none (servers key on the MAC)
	Hostname    string     // option 12 sent to the server; "" sends none
	VendorClass string     // option 60; "" sends "nbdboot"
	RequestedIP netip.Addr // option 50, e.g. from ip=<client>:...:dhcp
	// Timeout bounds the whole exchange (default 30s). Each attempt waits
	// FirstWait (default 1s), doubling up to 8s, before sending a fresh
	// DISCOVER.
	Timeout   time.Duration
	FirstWait time.Duration
	Logf      func(string, ...any)
}

// requestedOptions is the parameter request list (option 55).
var requestedOptions = []dhcpv4.OptionCode{
	dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer,
	dhcpv4.OptionHostName, dhcpv4.OptionDomainName, dhcpv4.OptionRootPath,
	dhcpv4.OptionInterfaceMTU, dhcpv4.OptionBroadcastAddress, dhcpv4.OptionNTPServers,
	dhcpv4.OptionIPAddressLeaseTime, dhcpv4.OptionRenewTimeValue, dhcpv4.OptionRebindingTimeValue,
}

func (c DHCPConfig) modifiers() []dhcpv4.Modifier {
	vc := c.VendorClass
	if vc == "" {
		vc = "nbdboot"
	}
	m := []dhcpv4.Modifier{
		dhcpv4.WithRequestedOptions(requestedOptions...),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(vc)),
	}
	if c.ClientID != nil {
		m = append(m, dhcpv4.WithOption(dhcpv4.OptClientIdentifier(c.ClientID)))
	}
	if c.Hostname != "" {
		m = append(m, dhcpv4.WithOption(dhcpv4.OptHostName(c.Hostname)))
	}
	return m
}

func (c DHCPConfig) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}

// DHCP acquires a lease on iface, which must be up. It sends a fresh
// DISCOVER after every unanswered attempt (and after a NAK) until the lease
// is granted, ctx is done or c.Timeout has passed; the error names iface.
// It does not configure the interface: see Apply.
func DHCP(ctx context.Context, iface string, c DHCPConfig) (*Lease, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	wait := c.FirstWait
	if wait <= 0 {
		wait = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	useXIDReader()
	client, err := nclient4.New(iface, nclient4.WithRetry(1), nclient4.WithTimeout(time.Hour))
	if err != nil {
		return nil, fmt.Errorf("dhcp on %s: %w", iface, err)
	}
	defer client.Close()
	mods := c.modifiers()
	if c.RequestedIP.Is4() {
		mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP(c.RequestedIP.AsSlice()))))
	}
	var lastErr error
	for attempt := 1; ; attempt++ {
		actx, acancel := context.WithTimeout(ctx, wait)
		raw, err := client.Request(actx, mods...)
		acancel()
		if err == nil {
			l, err := leaseFromACK(iface, raw.ACK, raw.CreationTime)
			if err != nil {
				return nil, err
			}
			l.raw = raw
			return l, nil
		}
		lastErr = err
		var nak *nclient4.ErrNak
		if errors.As(err, &nak) {
			c.logf("dhcp on %s: attempt %d: %v", iface, attempt, err)
		}
		if ctx.Err() != nil {
			if errors.Is(lastErr, context.DeadlineExceeded) || errors.Is(lastErr, context.Canceled) {
				lastErr = ctx.Err()
			}
			return nil, fmt.Errorf("dhcp on %s: no lease after %d attempts within %s: %w", iface, attempt, timeout, lastErr)
		}
		c.logf("dhcp on %s: attempt %d: no lease within %s, retrying", iface, attempt, wait)
		if wait < 8*time.Second {
			wait *= 2
		}
	}
}

// Renewer returns a RenewFunc that renews leases on the interface of
// index ifindex: a REQUEST for the current lease (RFC 2131 RENEWING), and
// after a NAK a fresh DISCOVER/REQUEST asking for the same address. The
// interface's name is looked up at every renewal, so a renamed link
// (udev's eth0 -> ens2 under a running system) is still renewed.
func (c DHCPConfig) Renewer(ifindex int) RenewFunc {
	return func(ctx context.Context, cur *Lease) (*Lease, error) {
		iface, err := InterfaceName(ifindex)
		if err != nil {
			return nil, fmt.Errorf("renew %s: %w", cur.Addr, err)
		}
		if cur.raw == nil {
			return nil, fmt.Errorf("renew %s on %s: lease was not obtained by DHCP", cur.Addr, iface)
		}
		timeout := c.Timeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		useXIDReader()
		var client *nclient4.Client
		client, err = nclient4.New(iface, nclient4.WithRetry(3), nclient4.WithTimeout(2*time.Second))
		if err != nil {
			return nil, fmt.Errorf("renew %s on %s: %w", cur.Addr, iface, err)
		}
		defer client.Close()
		raw, err := client.Renew(ctx, cur.raw, c.modifiers()...)
		var nak *nclient4.ErrNak
		if errors.As(err, &nak) {
			c.logf("dhcp on %s: renewal refused (%v), requesting %s again", iface, err, cur.Addr.Addr())
			mods := append(c.modifiers(), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP(cur.Addr.Addr().AsSlice()))))
			raw, err = client.Request(ctx, mods...)
		}
		if err != nil {
			return nil, fmt.Errorf("renew %s on %s: %w", cur.Addr, iface, err)
		}
		l, err := leaseFromACK(iface, raw.ACK, raw.CreationTime)
		if err != nil {
			return nil, err
		}
		l.raw = raw
		return l, nil
	}
}

// InterfaceName returns the current name of the interface of index
// ifindex.
func InterfaceName(ifindex int) (string, error) {
	ifc, err := net.InterfaceByIndex(ifindex)
	if err != nil {
		return "", fmt.Errorf("interface of index %d: %w", ifindex, err)
	}
	return ifc.Name, nil
}
