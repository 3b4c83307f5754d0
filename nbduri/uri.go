package nbduri

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// DefaultPort is the IANA-assigned NBD port.
const DefaultPort = 10809

// URI is a parsed nbd:// address.
type URI struct {
	Host   string // name or IP address, without brackets
	Port   uint16
	Export string
}

// Parse parses nbd://HOST[:PORT][/EXPORT].
func Parse(s string) (URI, error) {
	u, err := url.Parse(s)
	if err != nil {
		return URI{}, fmt.Errorf("NBD URI %q: %w", s, err)
	}
	switch u.Scheme {
	case "nbd":
	case "nbds", "nbd+unix", "nbds+unix", "nbd+vsock", "nbds+vsock":
		return URI{}, fmt.Errorf("NBD URI %q: scheme %s is not supported (only nbd://)", s, u.Scheme)
	default:
		return URI{}, fmt.Errorf("NBD URI %q: scheme must be nbd://", s)
	}
	if u.Opaque != "" {
		return URI{}, fmt.Errorf("NBD URI %q: want nbd://HOST[:PORT][/EXPORT]", s)
	}
	if u.User != nil {
		return URI{}, fmt.Errorf("NBD URI %q: user information is not supported", s)
	}
	if u.RawQuery != "" || u.ForceQuery {
		return URI{}, fmt.Errorf("NBD URI %q: query parameters are not supported", s)
	}
	if u.Fragment != "" {
		return URI{}, fmt.Errorf("NBD URI %q: fragments are not supported", s)
	}
	host := u.Hostname()
	if host == "" {
		return URI{}, fmt.Errorf("NBD URI %q: no host", s)
	}
	if err := checkHost(host, strings.HasPrefix(u.Host, "[")); err != nil {
		return URI{}, fmt.Errorf("NBD URI %q: %w", s, err)
	}
	port := uint16(DefaultPort)
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return URI{}, fmt.Errorf("NBD URI %q: port %q is not in 1-65535", s, p)
		}
		port = uint16(n)
	}
	return URI{Host: host, Port: port, Export: strings.TrimPrefix(u.Path, "/")}, nil
}

// Addr returns "host:port" for net.Dial, with an IPv6 host in brackets.
func (u URI) Addr() string { return net.JoinHostPort(u.Host, strconv.Itoa(int(u.Port))) }

// String formats u back into an nbd:// URI that Parse accepts.
func (u URI) String() string {
	v := url.URL{Scheme: "nbd", Host: u.Addr(), Path: "/" + u.Export}
	return v.String()
}

// checkHost accepts an IPv6 address only in brackets and otherwise a host
// name or IPv4 address of letters, digits, '.', '-' and '_'.
func checkHost(host string, bracketed bool) error {
	if bracketed || strings.Contains(host, ":") {
		if !bracketed {
			return fmt.Errorf("host %q: an IPv6 address goes in brackets", host)
		}
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("host %q: not an IPv6 address: %w", host, err)
		}
		return nil
	}
	for _, r := range host {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
		default:
			return fmt.Errorf("host %q: character %q is not allowed in a host name", host, r)
		}
	}
	return nil
}
