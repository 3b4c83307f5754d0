package netcfg

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Autoconf is the autoconf field of an ip= value.
type Autoconf uint8

// Autoconf values, spelled as on the kernel command line.
const (
	AutoconfUnset Autoconf = iota // field empty
	AutoconfOff                   // off
	AutoconfNone                  // none
	AutoconfOn                    // on
	AutoconfAny                   // any
	AutoconfDHCP                  // dhcp
	AutoconfBOOTP                 // bootp
	AutoconfRARP                  // rarp
	AutoconfBoth                  // both (bootp and rarp)
)

var autoconfNames = [...]string{"", "off", "none", "on", "any", "dhcp", "bootp", "rarp", "both"}

// String returns the kernel spelling ("" for AutoconfUnset).
func (a Autoconf) String() string {
	if int(a) < len(autoconfNames) {
		return autoconfNames[a]
	}
	return fmt.Sprintf("Autoconf(%d)", a)
}

// Dynamic reports whether a asks for a protocol (on, any, dhcp, bootp, rarp,
// both).
func (a Autoconf) Dynamic() bool { return a >= AutoconfOn && int(a) < len(autoconfNames) }

const autoconfExpected = "off|none|on|any|dhcp|bootp|rarp|both"

func parseAutoconf(s string) (Autoconf, bool) {
	for i, n := range autoconfNames {
		if i > 0 && s == n {
			return Autoconf(i), true
		}
	}
	return AutoconfUnset, false
}

// Method is what Configure does for one ip= entry.
type Method uint8

// Methods.
const (
	MethodOff    Method = iota // no network configuration for this entry
	MethodStatic               // addresses given on the command line
	MethodDHCP                 // DHCPv4
	MethodRARP                 // RARP: parsed but not supported
)

// String returns off, static, dhcp or rarp.
func (m Method) String() string {
	switch m {
	case MethodOff:
		return "off"
	case MethodStatic:
		return "static"
	case MethodDHCP:
		return "dhcp"
	case MethodRARP:
		return "rarp"
	}
	return fmt.Sprintf("Method(%d)", m)
}

// IPConfig is one parsed ip= value. Zero (invalid) addresses mean "not
// given".
type IPConfig struct {
	Client    netip.Addr // client address (IPv4 or IPv6)
	Server    netip.Addr // boot server (unused by nbdboot, kept for round trips)
	Gateway   netip.Addr
	PrefixLen int    // from the netmask field; 0 means not given
	Hostname  string // client hostname
	Device    string // interface name; "" means the first link with carrier
	Autoconf  Autoconf
	DNS0      netip.Addr
	DNS1      netip.Addr
	NTP0      netip.Addr
}

// Method tells how the entry is configured: see the package documentation.
func (c IPConfig) Method() Method {
	switch {
	case c.Autoconf == AutoconfRARP:
		return MethodRARP
	case c.Autoconf.Dynamic():
		return MethodDHCP
	case c.Client.IsValid():
		return MethodStatic
	case c.Autoconf == AutoconfUnset:
		return MethodDHCP // the kernel's default: autoconfigure
	}
	return MethodOff
}

// Prefix returns the client address with its prefix length: the netmask
// field, else the kernel's classful default for IPv4 (/8, /16, /24) and /64
// for IPv6.
func (c IPConfig) Prefix() netip.Prefix {
	if !c.Client.IsValid() {
		return netip.Prefix{}
	}
	bits := c.PrefixLen
	if bits == 0 {
		bits = defaultPrefixLen(c.Client)
	}
	return netip.PrefixFrom(c.Client, bits)
}

func defaultPrefixLen(a netip.Addr) int {
	if !a.Is4() {
		return 64
	}
	switch b := a.As4()[0]; {
	case b < 128:
		return 8
	case b < 192:
		return 16
	}
	return 24
}

// DNS returns the given name servers in order.
func (c IPConfig) DNS() []netip.Addr {
	var out []netip.Addr
	for _, a := range []netip.Addr{c.DNS0, c.DNS1} {
		if a.IsValid() {
			out = append(out, a)
		}
	}
	return out
}

const ipFieldCount = 10

var ipFieldNames = [ipFieldCount]string{"client", "server", "gw", "netmask", "hostname", "device", "autoconf", "dns0", "dns1", "ntp0"}

// IPError is a malformed ip= value. Field is the name of the offending field
// ("" when the value as a whole is wrong).
type IPError struct {
	Value  string
	Field  string
	Reason string
}

func (e *IPError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("ip=%s: %s", e.Value, e.Reason)
	}
	return fmt.Sprintf("ip=%s: field %s: %s", e.Value, e.Field, e.Reason)
}

// ParseIP parses one ip= value (without the "ip=" prefix).
func ParseIP(value string) (IPConfig, error) {
	bad := func(field, format string, args ...any) (IPConfig, error) {
		return IPConfig{}, &IPError{Value: value, Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if value == "" {
		return bad("", "empty value; expected dhcp, off, <interface>:dhcp or <client>:<server>:<gw>:<netmask>:<hostname>:<device>:<autoconf>:<dns0>:<dns1>:<ntp0>")
	}
	if len(value) > 1024 {
		return bad("", "value is %d bytes long; expected at most 1024", len(value))
	}
	// ip=dhcp, ip=off, ...: the whole value is an autoconf name.
	if a, ok := parseAutoconf(value); ok {
		return IPConfig{Autoconf: a}, nil
	}
	if isIPv6Autoconf(value) {
		return bad("autoconf", "%q (IPv6 autoconfiguration) is not supported; expected %s", value, autoconfExpected)
	}
	if isBareIPv6(value) {
		return bad("client", "%q: IPv6 addresses must be written in brackets ([%s])", value, value)
	}
	fields, err := splitIPFields(value)
	if err != "" {
		return bad("", "%s", err)
	}
	if len(fields) > ipFieldCount {
		return bad("", "%d fields; expected at most %d (client:server:gw:netmask:hostname:device:autoconf:dns0:dns1:ntp0)", len(fields), ipFieldCount)
	}
	// dracut: ip=<interface>:{dhcp|on|any|dhcp6|auto6}
	if len(fields) == 2 && fields[0] != "" && !strings.HasPrefix(fields[0], "[") {
		if _, err := netip.ParseAddr(fields[0]); err != nil {
			return parseDeviceForm(value, fields[0], fields[1])
		}
	}
	var c IPConfig
	addrs := map[int]*netip.Addr{0: &c.Client, 1: &c.Server, 2: &c.Gateway, 7: &c.DNS0, 8: &c.DNS1, 9: &c.NTP0}
	for i, f := range fields {
		if f == "" {
			continue
		}
		name := ipFieldNames[i]
		if p, ok := addrs[i]; ok {
			a, reason := parseIPAddr(f)
			if reason != "" {
				return bad(name, "%s", reason)
			}
			*p = a
			continue
		}
		switch i {
		case 4:
			if reason := checkHostname(f); reason != "" {
				return bad(name, "%s", reason)
			}
			c.Hostname = f
		case 5:
			if reason := checkDevice(f); reason != "" {
				return bad(name, "%s", reason)
			}
			c.Device = f
		case 6:
			a, ok := parseAutoconf(f)
			if !ok {
				if isIPv6Autoconf(f) {
					return bad(name, "%q (IPv6 autoconfiguration) is not supported; expected %s", f, autoconfExpected)
				}
				return bad(name, "%q; expected %s", f, autoconfExpected)
			}
			c.Autoconf = a
		}
	}
	// The netmask depends on the client's family, so it is parsed last.
	if len(fields) > 3 && fields[3] != "" {
		bits, reason := parseNetmask(fields[3], c.Client)
		if reason != "" {
			return bad("netmask", "%s", reason)
		}
		c.PrefixLen = bits
	}
	if c.Client.IsValid() && c.Gateway.IsValid() && c.Client.Is4() != c.Gateway.Is4() {
		return bad("gw", "%s is not in the client's address family (%s)", c.Gateway, c.Client)
	}
	return c, nil
}

func isIPv6Autoconf(s string) bool {
	switch s {
	case "dhcp6", "auto6", "link6", "either6":
		return true
	}
	return false
}

func parseDeviceForm(value, dev, method string) (IPConfig, error) {
	if reason := checkDevice(dev); reason != "" {
		return IPConfig{}, &IPError{Value: value, Field: "device", Reason: reason}
	}
	switch method {
	case "dhcp", "on", "any":
		a, _ := parseAutoconf(method)
		return IPConfig{Device: dev, Autoconf: a}, nil
	}
	reason := fmt.Sprintf("%q; expected <interface>:{dhcp|on|any}", method)
	if isIPv6Autoconf(method) {
		reason = fmt.Sprintf("%q (IPv6 autoconfiguration) is not supported; expected dhcp, on or any", method)
	}
	return IPConfig{}, &IPError{Value: value, Field: "autoconf", Reason: reason}
}

// splitIPFields splits on ':' outside brackets.
func splitIPFields(s string) ([]string, string) {
	var fields []string
	start, depth := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '[':
			if depth > 0 {
				return nil, fmt.Sprintf("nested '[' at offset %d", i)
			}
			depth++
		case ']':
			if depth == 0 {
				return nil, fmt.Sprintf("']' without '[' at offset %d", i)
			}
			depth--
		case ':':
			if depth == 0 {
				fields = append(fields, s[start:i])
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, "'[' without ']'"
	}
	return append(fields, s[start:]), ""
}

// parseIPAddr parses "1.2.3.4" or "[fd00::1]".
func parseIPAddr(f string) (netip.Addr, string) {
	if strings.HasPrefix(f, "[") {
		if !strings.HasSuffix(f, "]") {
			return netip.Addr{}, fmt.Sprintf("%q: expected [IPv6 address]", f)
		}
		a, err := netip.ParseAddr(f[1 : len(f)-1])
		if err != nil || !a.Is6() || a.Zone() != "" {
			return netip.Addr{}, fmt.Sprintf("%q: expected [IPv6 address] without zone", f)
		}
		return a, ""
	}
	a, err := netip.ParseAddr(f)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Sprintf("%q: expected an IPv4 address (a.b.c.d) or an IPv6 address in brackets", f)
	}
	return a, ""
}

// parseNetmask accepts a dotted IPv4 mask or a prefix length; 0 and 0.0.0.0
// mean "not given" as in the kernel.
func parseNetmask(f string, client netip.Addr) (int, string) {
	max := 32
	if client.Is6() {
		max = 128
	}
	if n, err := strconv.Atoi(f); err == nil && f[0] != '+' && f[0] != '-' {
		if n > max || len(f) > 3 {
			return 0, fmt.Sprintf("%q: expected a prefix length 0..%d or a dotted IPv4 mask", f, max)
		}
		return n, ""
	}
	if client.Is6() {
		return 0, fmt.Sprintf("%q: expected a prefix length 0..128 for an IPv6 client", f)
	}
	m, err := netip.ParseAddr(f)
	if err != nil || !m.Is4() {
		return 0, fmt.Sprintf("%q: expected a dotted IPv4 mask (255.255.255.0) or a prefix length (24)", f)
	}
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	ones := 0
	for v&0x80000000 != 0 {
		ones++
		v <<= 1
	}
	if v != 0 {
		return 0, fmt.Sprintf("%q: mask bits are not contiguous", f)
	}
	return ones, ""
}

func checkHostname(h string) string { return checkName(h, 64) }

// checkName accepts host and domain names: letters, digits, '-', '.', '_'.
func checkName(h string, max int) string {
	if len(h) > max {
		return fmt.Sprintf("%d bytes; expected at most %d", len(h), max)
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return fmt.Sprintf("%q: byte %q not allowed; expected letters, digits, '-', '.' or '_'", h, c)
		}
	}
	return ""
}

func checkDevice(d string) string {
	if len(d) > 15 {
		return fmt.Sprintf("%q: %d bytes; expected an interface name of at most 15", d, len(d))
	}
	if d == "." || d == ".." {
		return fmt.Sprintf("%q: not an interface name", d)
	}
	for i := 0; i < len(d); i++ {
		if c := d[i]; c <= ' ' || c >= 0x7f || c == '/' || c == '[' || c == ']' {
			return fmt.Sprintf("%q: byte %q not allowed in an interface name", d, c)
		}
	}
	return ""
}

// String renders c in the kernel's syntax so that ParseIP(c.String())
// returns c.
func (c IPConfig) String() string {
	empty := c == IPConfig{Autoconf: c.Autoconf}
	if empty && c.Autoconf != AutoconfUnset {
		return c.Autoconf.String()
	}
	if c == (IPConfig{Device: c.Device, Autoconf: c.Autoconf}) && c.Device != "" {
		switch c.Autoconf {
		case AutoconfDHCP, AutoconfOn, AutoconfAny:
			return c.Device + ":" + c.Autoconf.String()
		}
	}
	f := make([]string, ipFieldCount)
	f[0], f[1], f[2] = fmtAddr(c.Client), fmtAddr(c.Server), fmtAddr(c.Gateway)
	if c.PrefixLen > 0 {
		if c.Client.Is6() || c.PrefixLen > 32 {
			f[3] = strconv.Itoa(c.PrefixLen)
		} else {
			f[3] = dottedMask(c.PrefixLen)
		}
	}
	f[4], f[5], f[6] = c.Hostname, c.Device, c.Autoconf.String()
	f[7], f[8], f[9] = fmtAddr(c.DNS0), fmtAddr(c.DNS1), fmtAddr(c.NTP0)
	n := ipFieldCount
	for n > 1 && f[n-1] == "" {
		n--
	}
	// A lone field would be read as a shorthand; keep the separator.
	if n < 3 {
		n = 3
	}
	// "::0.0.10.0" (only a gateway) reads as one bare IPv6 address; an
	// empty netmask field after it keeps it a field list.
	for n < ipFieldCount && isBareIPv6(strings.Join(f[:n], ":")) {
		n++
	}
	return strings.Join(f[:n], ":")
}

func isBareIPv6(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is6() && strings.Trim(s, ":") != ""
}

func dottedMask(bits int) string {
	v := ^uint32(0) << (32 - bits)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String()
}

func fmtAddr(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return ""
	case a.Is6():
		return "[" + a.String() + "]"
	}
	return a.String()
}

// ParseIPs parses every ip= value of a command line. At most one entry may
// omit the device, devices may not repeat, and off/none must stand alone.
func ParseIPs(values []string) ([]IPConfig, error) {
	var out []IPConfig
	seen := map[string]bool{}
	for _, v := range values {
		c, err := ParseIP(v)
		if err != nil {
			return nil, err
		}
		if c.Method() == MethodOff && len(values) > 1 {
			return nil, &IPError{Value: v, Reason: fmt.Sprintf("turns the network off but %d ip= values are given; expected it alone", len(values))}
		}
		if seen[c.Device] {
			if c.Device == "" {
				return nil, &IPError{Value: v, Field: "device", Reason: "a second ip= without a device; expected one device-less ip= at most"}
			}
			return nil, &IPError{Value: v, Field: "device", Reason: fmt.Sprintf("%s is configured by an earlier ip=; expected each device once", c.Device)}
		}
		seen[c.Device] = true
		out = append(out, c)
	}
	return out, nil
}
