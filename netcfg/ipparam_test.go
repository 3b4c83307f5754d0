package netcfg

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestParseIP(t *testing.T) {
	for _, tc := range []struct {
		in     string
		want   IPConfig
		method Method
		str    string // String() of the result; "" means same as in
	}{
		{in: "dhcp", want: IPConfig{Autoconf: AutoconfDHCP}, method: MethodDHCP},
		{in: "on", want: IPConfig{Autoconf: AutoconfOn}, method: MethodDHCP},
		{in: "any", want: IPConfig{Autoconf: AutoconfAny}, method: MethodDHCP},
		{in: "bootp", want: IPConfig{Autoconf: AutoconfBOOTP}, method: MethodDHCP},
		{in: "both", want: IPConfig{Autoconf: AutoconfBoth}, method: MethodDHCP},
		{in: "rarp", want: IPConfig{Autoconf: AutoconfRARP}, method: MethodRARP},
		{in: "off", want: IPConfig{Autoconf: AutoconfOff}, method: MethodOff},
		{in: "none", want: IPConfig{Autoconf: AutoconfNone}, method: MethodOff},
		// dracut's <interface>:<method>
		{in: "eth0:dhcp", want: IPConfig{Device: "eth0", Autoconf: AutoconfDHCP}, method: MethodDHCP},
		{in: "enp0s3:on", want: IPConfig{Device: "enp0s3", Autoconf: AutoconfOn}, method: MethodDHCP},
		{in: "eth1:any", want: IPConfig{Device: "eth1", Autoconf: AutoconfAny}, method: MethodDHCP},
		// The same thing in the kernel's long form renders as the short one.
		{in: ":::::eth0:dhcp", want: IPConfig{Device: "eth0", Autoconf: AutoconfDHCP}, method: MethodDHCP, str: "eth0:dhcp"},
		{in: "::::::dhcp", want: IPConfig{Autoconf: AutoconfDHCP}, method: MethodDHCP, str: "dhcp"},
		// Full static, dotted netmask.
		{
			in: "10.0.0.2:10.0.0.1:10.0.0.254:255.255.255.0:client1:eth0:off:10.0.0.53:10.0.0.54:10.0.0.123",
			want: IPConfig{Client: addr("10.0.0.2"), Server: addr("10.0.0.1"), Gateway: addr("10.0.0.254"), PrefixLen: 24,
				Hostname: "client1", Device: "eth0", Autoconf: AutoconfOff, DNS0: addr("10.0.0.53"), DNS1: addr("10.0.0.54"), NTP0: addr("10.0.0.123")},
			method: MethodStatic,
		},
		// Prefix length netmask renders dotted.
		{in: "10.0.0.2::10.0.0.1:24", want: IPConfig{Client: addr("10.0.0.2"), Gateway: addr("10.0.0.1"), PrefixLen: 24},
			method: MethodStatic, str: "10.0.0.2::10.0.0.1:255.255.255.0"},
		// Client only: static with a classful mask.
		{in: "192.168.7.9", want: IPConfig{Client: addr("192.168.7.9")}, method: MethodStatic, str: "192.168.7.9::"},
		{in: "10.1.2.3::::::none", want: IPConfig{Client: addr("10.1.2.3"), Autoconf: AutoconfNone}, method: MethodStatic},
		// Client and dhcp: DHCP asking for that address.
		{in: "10.1.2.3::::::dhcp", want: IPConfig{Client: addr("10.1.2.3"), Autoconf: AutoconfDHCP}, method: MethodDHCP},
		// Empty fields everywhere, dns1 only.
		{in: "::::::::10.9.9.9", want: IPConfig{DNS1: addr("10.9.9.9")}, method: MethodDHCP},
		{in: "::", want: IPConfig{}, method: MethodDHCP},
		{in: ":::::::", want: IPConfig{}, method: MethodDHCP, str: "::"},
		// Netmask 0 means not given.
		{in: "10.0.0.2:::0.0.0.0", want: IPConfig{Client: addr("10.0.0.2")}, method: MethodStatic, str: "10.0.0.2::"},
		{in: "10.0.0.2:::255.255.255.255", want: IPConfig{Client: addr("10.0.0.2"), PrefixLen: 32}, method: MethodStatic},
		// IPv6 in brackets with a prefix length.
		{
			in:     "[fd00::2]::[fd00::1]:64:h6:eth0:off:[fd00::53]",
			want:   IPConfig{Client: addr("fd00::2"), Gateway: addr("fd00::1"), PrefixLen: 64, Hostname: "h6", Device: "eth0", Autoconf: AutoconfOff, DNS0: addr("fd00::53")},
			method: MethodStatic,
		},
		{in: "[2001:db8::7]", want: IPConfig{Client: addr("2001:db8::7")}, method: MethodStatic, str: "[2001:db8::7]::"},
		{in: "10.0.0.2:[fd00::1]", want: IPConfig{Client: addr("10.0.0.2"), Server: addr("fd00::1")}, method: MethodStatic, str: "10.0.0.2:[fd00::1]:"},
		// Hostname and device with DHCP.
		{in: "::::node-7.lab:ens3:dhcp", want: IPConfig{Hostname: "node-7.lab", Device: "ens3", Autoconf: AutoconfDHCP}, method: MethodDHCP},
	} {
		got, err := ParseIP(tc.in)
		if err != nil {
			t.Errorf("ParseIP(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseIP(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if m := got.Method(); m != tc.method {
			t.Errorf("ParseIP(%q).Method() = %v, want %v", tc.in, m, tc.method)
		}
		wantStr := tc.str
		if wantStr == "" {
			wantStr = tc.in
		}
		if s := got.String(); s != wantStr {
			t.Errorf("ParseIP(%q).String() = %q, want %q", tc.in, s, wantStr)
		}
	}
}

func TestParseIPErrors(t *testing.T) {
	for _, tc := range []struct {
		in    string
		field string // IPError.Field
		want  string // substring of the message
	}{
		{"", "", "empty value"},
		{"dhcp6", "autoconf", "IPv6 autoconfiguration"},
		{"auto6", "autoconf", "IPv6 autoconfiguration"},
		{"eth0:dhcp6", "autoconf", "IPv6 autoconfiguration"},
		{"eth0:auto6", "autoconf", "IPv6 autoconfiguration"},
		{"eth0:off", "autoconf", "expected <interface>:{dhcp|on|any}"},
		{"eth0:", "autoconf", "expected <interface>:{dhcp|on|any}"},
		{"eth0", "client", "expected an IPv4 address"},
		{"dchp", "client", "expected an IPv4 address"},
		{"::::::dhcpp", "autoconf", "expected off|none|on|any|dhcp|bootp|rarp|both"},
		{"::::::dhcp6", "autoconf", "IPv6 autoconfiguration"},
		{"10.0.0.256", "client", `"10.0.0.256"`},
		{"010.0.0.1", "client", "expected an IPv4 address"},
		{"fd00::1", "client", "in brackets ([fd00::1])"},
		{"fd00:1:2:3:4:5:6:7:8:9:10", "", "at most 10"}, // unbracketed IPv6 splits into many fields
		{"fd00::2:::", "client", "expected an IPv4 address"},
		{"[fd00::2", "", "'[' without ']'"},
		{"fd00::2]", "", "']' without '['"},
		{"[[fd00::2]]", "", "nested '['"},
		{"[10.0.0.1]", "client", "expected [IPv6 address]"},
		{"[fe80::1%eth0]", "client", "without zone"},
		{"[fd00::1]x", "client", "expected [IPv6 address]"},
		{"10.0.0.2::10.0.0.1:255.0.255.0", "netmask", "not contiguous"},
		{"10.0.0.2::10.0.0.1:33", "netmask", "prefix length 0..32"},
		{"10.0.0.2::10.0.0.1:-1", "netmask", "dotted IPv4 mask"},
		{"10.0.0.2::10.0.0.1:+8", "netmask", "dotted IPv4 mask"},
		{"10.0.0.2::10.0.0.1:0024", "netmask", "prefix length"},
		{"10.0.0.2::10.0.0.1:mask", "netmask", "dotted IPv4 mask"},
		{"[fd00::2]:::255.255.255.0", "netmask", "for an IPv6 client"},
		{"[fd00::2]:::129", "netmask", "0..128"},
		{"10.0.0.2::[fd00::1]", "gw", "address family"},
		{"[fd00::2]::10.0.0.1", "gw", "address family"},
		{"10.0.0.2::::bad host", "hostname", "not allowed"},
		{"10.0.0.2::::" + strings.Repeat("h", 65), "hostname", "at most 64"},
		{"10.0.0.2:::::averyveryverylongname0", "device", "at most 15"},
		{"10.0.0.2:::::eth/0", "device", "not allowed"},
		{"10.0.0.2:::::..", "device", "not an interface name"},
		{"1.2.3.4:::::::::1.2.3.5:extra", "", "at most 10"},
		{"10.0.0.2:::::::dns", "dns0", "expected an IPv4 address"},
		{"10.0.0.2::::::::x", "dns1", "expected an IPv4 address"},
		{"10.0.0.2:::::::::x", "ntp0", "expected an IPv4 address"},
		{"10.0.0.2:nfs", "server", "expected an IPv4 address"},
		{strings.Repeat(":", 2000), "", "at most 1024"},
	} {
		_, err := ParseIP(tc.in)
		var ie *IPError
		if !errors.As(err, &ie) {
			t.Errorf("ParseIP(%q) error = %v, want *IPError", tc.in, err)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "ip=") || ie.Field != tc.field || !strings.Contains(msg, tc.want) {
			t.Errorf("ParseIP(%q) error = %q (field %q), want field %q and %q", tc.in, msg, ie.Field, tc.field, tc.want)
		}
		if tc.field != "" && !strings.Contains(msg, "field "+tc.field+":") {
			t.Errorf("ParseIP(%q) error = %q does not name field %s", tc.in, msg, tc.field)
		}
	}
}

func TestIPConfigPrefix(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"10.1.2.3", "10.1.2.3/8"},
		{"172.16.0.5", "172.16.0.5/16"},
		{"192.168.1.5", "192.168.1.5/24"},
		{"10.1.2.3:::255.255.0.0", "10.1.2.3/16"},
		{"[fd00::5]", "fd00::5/64"},
		{"[fd00::5]:::112", "fd00::5/112"},
	} {
		c, err := ParseIP(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Prefix().String(); got != tc.want {
			t.Errorf("ParseIP(%q).Prefix() = %s, want %s", tc.in, got, tc.want)
		}
	}
	if p := (IPConfig{}).Prefix(); p.IsValid() {
		t.Errorf("Prefix without client = %v, want invalid", p)
	}
}

func TestParseIPs(t *testing.T) {
	got, err := ParseIPs([]string{"eth0:dhcp", "10.0.0.2:::24::eth1:off", ":::::::10.0.0.53"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Device != "eth0" || got[1].Device != "eth1" || got[2].DNS0 != addr("10.0.0.53") {
		t.Errorf("ParseIPs = %+v", got)
	}
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"dhcp", "::::::on"}, "a second ip= without a device"},
		{[]string{"eth0:dhcp", "10.0.0.2:::::eth0"}, "eth0 is configured by an earlier ip="},
		{[]string{"eth0:dhcp", "off"}, "turns the network off"},
		{[]string{"eth0:dhcp", "eth1:dhcp6"}, "ip=eth1:dhcp6: field autoconf"},
	} {
		if _, err := ParseIPs(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseIPs(%q) error = %v, want %q", tc.in, err, tc.want)
		}
	}
}
