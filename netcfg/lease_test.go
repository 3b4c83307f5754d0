package netcfg

import (
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

func ack(t *testing.T, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	t.Helper()
	m, err := dhcpv4.New(append([]dhcpv4.Modifier{
		dhcpv4.WithMessageType(dhcpv4.MessageTypeAck),
		dhcpv4.WithYourIP(net.IPv4(10, 99, 0, 42)),
	}, mods...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLeaseFromACK(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	full := ack(t,
		dhcpv4.WithNetmask(net.CIDRMask(24, 32)),
		dhcpv4.WithRouter(net.IPv4(0, 0, 0, 0), net.IPv4(10, 99, 0, 1)),
		dhcpv4.WithDNS(net.IPv4(10, 99, 0, 53), net.IPv4(10, 99, 0, 54)),
		dhcpv4.WithOption(dhcpv4.OptHostName("client42")),
		dhcpv4.WithOption(dhcpv4.OptDomainName("lab.test")),
		dhcpv4.WithOption(dhcpv4.OptRootPath("nbd://10.0.0.1/root")),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 99, 0, 1))),
		dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(time.Hour)),
		dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(20*time.Minute)),
		dhcpv4.WithGeneric(dhcpv4.OptionInterfaceMTU, []byte{0x05, 0x78}), // 1400
		dhcpv4.WithGeneric(dhcpv4.OptionNTPServers, []byte{10, 99, 0, 123}),
	)
	got, err := leaseFromACK("eth0", full, now)
	if err != nil {
		t.Fatal(err)
	}
	got.raw = nil
	want := &Lease{
		Interface: "eth0", Addr: netip.MustParsePrefix("10.99.0.42/24"), Router: addr("10.99.0.1"),
		DNS: []netip.Addr{addr("10.99.0.53"), addr("10.99.0.54")}, NTP: []netip.Addr{addr("10.99.0.123")},
		Hostname: "client42", Domain: "lab.test", RootPath: "nbd://10.0.0.1/root", MTU: 1400,
		ServerID: addr("10.99.0.1"), Duration: time.Hour, T1: 20 * time.Minute, T2: 52*time.Minute + 30*time.Second,
		Acquired: now,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("leaseFromACK:\n got %+v\nwant %+v", got, want)
	}

	// Defaults: classful mask, one hour, RFC 2131 T1/T2, no MTU.
	got, err = leaseFromACK("eth0", ack(t), now)
	if err != nil {
		t.Fatal(err)
	}
	if got.Addr.String() != "10.99.0.42/8" || got.Duration != time.Hour || got.T1 != 30*time.Minute || got.T2 != 52*time.Minute+30*time.Second || got.MTU != 0 {
		t.Errorf("defaults: %+v", got)
	}
	got, err = leaseFromACK("eth0", ack(t, dhcpv4.WithGeneric(dhcpv4.OptionIPAddressLeaseTime, []byte{0xff, 0xff, 0xff, 0xff})), now)
	if err != nil || got.Duration != Infinite || !got.Expires().IsZero() {
		t.Errorf("infinite lease: %+v, %v", got, err)
	}
	// Names that are not plain names are dropped.
	got, err = leaseFromACK("eth0", ack(t,
		dhcpv4.WithOption(dhcpv4.OptHostName("evil\nhost")),
		dhcpv4.WithOption(dhcpv4.OptDomainName("lab.test\nnameserver 6.6.6.6"))), now)
	if err != nil || got.Hostname != "" || got.Domain != "" {
		t.Errorf("bad names: %+v, %v", got, err)
	}
	// An MTU below 68 is ignored.
	got, err = leaseFromACK("eth0", ack(t, dhcpv4.WithGeneric(dhcpv4.OptionInterfaceMTU, []byte{0x00, 0x10})), now)
	if err != nil || got.MTU != 0 {
		t.Errorf("tiny MTU: %+v, %v", got, err)
	}

	for _, tc := range []struct {
		name string
		ack  *dhcpv4.DHCPv4
		want string
	}{
		{"no address", ack(t, dhcpv4.WithYourIP(net.IPv4zero)), "unusable address"},
		{"broadcast address", ack(t, dhcpv4.WithYourIP(net.IPv4bcast)), "unusable address"},
		{"bad mask", ack(t, dhcpv4.WithGeneric(dhcpv4.OptionSubnetMask, []byte{255, 0, 255, 0})), "option 1"},
		{"short mask", ack(t, dhcpv4.WithGeneric(dhcpv4.OptionSubnetMask, []byte{255, 255, 255})), "option 1"},
		{"mtu 3 bytes", ack(t, dhcpv4.WithGeneric(dhcpv4.OptionInterfaceMTU, []byte{0, 5, 0x78})), "option 26"},
		{"nil", nil, "no ACK"},
	} {
		_, err := leaseFromACK("eth7", tc.ack, now)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "eth7") {
			t.Errorf("%s: error %v, want %q naming eth7", tc.name, err, tc.want)
		}
	}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestLeaseStringNoRouter(t *testing.T) {
	l := &Lease{Interface: "eth0", Addr: netip.MustParsePrefix("10.0.2.15/24"), ServerID: netip.MustParseAddr("10.0.2.2"), Duration: time.Hour}
	if got, want := l.String(), "10.0.2.15/24 on eth0 from 10.0.2.2 (router none, lease 1h0m0s)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
