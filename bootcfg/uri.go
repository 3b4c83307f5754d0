package bootcfg

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Address is one server and one export: what an nbd:// URI names, and
// what a connection negotiates.
type Address struct {
	Server
	Export string `json:"export"`
}

// String returns the address as nbd://HOST:PORT/EXPORT, the port always
// written. It is also the backend identifier handed to the kernel.
func (a Address) String() string {
	u := url.URL{Scheme: "nbd", Host: a.Addr(), Path: "/" + a.Export}
	return u.String()
}

// Addr returns HOST:PORT for dialing, with an IPv6 host in brackets.
func (s Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(int(s.Port))) }

// uriSchemes are the NBD URI schemes nbdboot knows but does not serve.
var uriSchemes = []string{"nbds", "nbd+unix", "nbds+unix", "nbd+vsock", "nbds+vsock"}

// ParseURI parses an administrator's NBD address,
// nbd://HOST[:PORT][/EXPORT], after the NBD URI specification (doc/uri.md
// in the NBD project): an IPv6 host goes in brackets (a zone written %25),
// the port defaults to protocol.DefaultPort (an empty port too, as RFC
// 3986 allows), and the export is the percent-decoded path without its
// leading slash. Unlike a root value, it names exactly one server. TLS,
// Unix sockets and query parameters are refused with an error saying so.
func ParseURI(s string) (Address, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	switch {
	case !ok && strings.HasPrefix(strings.ToLower(s), "nbd:"):
		return Address{}, fmt.Errorf("NBD URI %q: want nbd://HOST[:PORT][/EXPORT]", s)
	case !ok:
		return Address{}, fmt.Errorf("NBD URI %q: scheme must be nbd://", s)
	case strings.EqualFold(scheme, "nbd"):
	default:
		for _, known := range uriSchemes {
			if strings.EqualFold(scheme, known) {
				return Address{}, fmt.Errorf("NBD URI %q: scheme %s is not supported (only nbd://)", s, scheme)
			}
		}
		return Address{}, fmt.Errorf("NBD URI %q: scheme must be nbd://", s)
	}
	authority, path, hasPath := strings.Cut(rest, "/")
	if strings.Contains(authority, ",") {
		return Address{}, fmt.Errorf("NBD URI %q: several servers are not allowed in a URI (only in nbdroot=)", s)
	}
	if authority == "" {
		return Address{}, fmt.Errorf("NBD URI %q: no host", s)
	}
	if strings.Count(authority, ":") == 1 || strings.HasSuffix(authority, "]:") {
		authority = strings.TrimSuffix(authority, ":") // an empty port is the default
	}
	if hasPath {
		authority += "/" + path
	}
	t, err := parseURI(authority)
	if err != nil {
		return Address{}, fmt.Errorf("NBD URI %q: %w", s, err)
	}
	return Address{Server: t.Servers[0], Export: t.Export}, nil
}
