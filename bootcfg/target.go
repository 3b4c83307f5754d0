package bootcfg

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/nbdboot/nbdboot/nbdnl"
	"github.com/nbdboot/nbdboot/protocol"
)

// maxExportLen is the NBD protocol's limit on export names (bytes).
const maxExportLen = 4096

// Expected forms, quoted in error messages.
const (
	dracutForm = "nbd:HOST:PORT[:FSTYPE[:ROOTFLAGS[:OPTIONS]]]"
	uriForm    = "nbd://HOST[:PORT][,HOST2[:PORT]…]/EXPORT"
	debianForm = "HOST,PORT|EXPORT[,nbdX]"
)

// Server is one NBD server address.
type Server struct {
	Host string `json:"host"` // IPv4 or IPv6 literal (no brackets) or host name
	Port uint16 `json:"port"`
}

// String returns HOST:PORT, with brackets around an IPv6 literal.
func (s Server) String() string { return hostPort(s.Host, s.Port, true) }

// Target is an NBD root: where to find the export and, optionally, how to
// mount it. Servers holds alternatives for the same export, tried in order.
type Target struct {
	Servers   []Server
	Export    string        // "" is the server's default export
	FSType    string        // from dracut's FSTYPE field; "" if not given
	RootFlags string        // from dracut's ROOTFLAGS field; "" if not given
	Options   Options       // from dracut's OPTIONS field
	Device    *nbdnl.Device // /dev/nbdN from initramfs-tools' ",nbdX"; nil if not given
}

// addServer appends s to list unless it is there already: a server named
// twice, in one nbd:// list or in several nbdroot= values, is tried once.
func addServer(list []Server, s Server) []Server {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// devicePath is d's path, "" for nil.
func devicePath(d *nbdnl.Device) string {
	if d == nil {
		return ""
	}
	return d.Path()
}

// URI returns the servers and the export as an nbd:// URI, which
// ParseNBDRoot accepts. FSType, RootFlags, Options and Device are not in it.
// The port is omitted when it is protocol.DefaultPort (NBD's IANA port).
func (t Target) URI() string {
	var b strings.Builder
	b.WriteString("nbd://")
	for i, s := range t.Servers {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(hostPort(strings.ReplaceAll(s.Host, "%", "%25"), s.Port, s.Port != protocol.DefaultPort))
	}
	if t.Export != "" {
		b.WriteByte('/')
		b.WriteString(escapeExport(t.Export))
	}
	return b.String()
}

// String returns the target for logging: its URI followed by whatever else
// was given.
func (t Target) String() string {
	var extra []string
	if t.FSType != "" {
		extra = append(extra, "fstype="+t.FSType)
	}
	if t.RootFlags != "" {
		extra = append(extra, "rootflags="+t.RootFlags)
	}
	if o := t.Options.String(); o != "" {
		extra = append(extra, "options="+o)
	}
	if t.Device != nil {
		extra = append(extra, "device="+t.Device.Path())
	}
	if len(extra) == 0 {
		return t.URI()
	}
	return t.URI() + " (" + strings.Join(extra, " ") + ")"
}

// ParseNBDRoot parses one NBD root value in any of the forms listed in the
// package documentation except "dhcp", which only the command line may use
// (the init calls ParseNBDRoot on the DHCP root-path it receives). Errors
// say what was wrong and which form was expected; they do not repeat s.
func ParseNBDRoot(s string) (Target, error) {
	s = strings.TrimSpace(s)
	low := strings.ToLower(s)
	switch {
	case s == "":
		return Target{}, fmt.Errorf("empty value; expected %s or %s", dracutForm, uriForm)
	case low == "dhcp":
		return Target{}, errors.New("\"dhcp\" is not a server: it asks for the DHCP root-path, which must then name the server")
	case strings.HasPrefix(low, "nbds://"), strings.HasPrefix(low, "nbds+"):
		return Target{}, errors.New("TLS not supported yet (nbds://); use nbd://")
	case strings.HasPrefix(low, "nbd+unix://"):
		return Target{}, errors.New("nbd+unix:// (a local socket) cannot hold a network root; use nbd://HOST/EXPORT")
	case strings.HasPrefix(low, "nbd://"):
		return parseURI(s[len("nbd://"):])
	case strings.Contains(low, "://"):
		scheme, _, _ := strings.Cut(s, "://")
		return Target{}, fmt.Errorf("URI scheme %q not supported; expected %s", scheme, uriForm)
	case strings.HasPrefix(low, "nbd:"):
		return parseDracut(s[len("nbd:"):])
	case strings.Contains(s, ","):
		return parseDebian(s)
	}
	return Target{}, fmt.Errorf("unrecognised NBD root; expected %s, %s or %s", dracutForm, uriForm, debianForm)
}

// parseURI parses what follows "nbd://".
func parseURI(s string) (Target, error) {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		return Target{}, fmt.Errorf("query or fragment %q not supported; expected %s", s[i:], uriForm)
	}
	authority, path, _ := strings.Cut(s, "/")
	if strings.Contains(authority, "@") {
		return Target{}, fmt.Errorf("user information in %q not supported; expected %s", authority, uriForm)
	}
	if authority == "" {
		return Target{}, fmt.Errorf("no server; expected %s", uriForm)
	}
	var t Target
	for spec := range strings.SplitSeq(authority, ",") {
		srv, err := parseHostPort(spec, true)
		if err != nil {
			return Target{}, fmt.Errorf("server %q: %w; expected %s", spec, err, uriForm)
		}
		t.Servers = addServer(t.Servers, srv)
	}
	export, err := unescapeExport(path)
	if err != nil {
		return Target{}, fmt.Errorf("export %q: %w", path, err)
	}
	if len(export) > maxExportLen {
		return Target{}, fmt.Errorf("export name is %d bytes; the NBD limit is %d", len(export), maxExportLen)
	}
	t.Export = export
	return t, nil
}

// parseDracut parses what follows "nbd:" in dracut's form
// HOST:PORT[/EXPORT][:FSTYPE[:ROOTFLAGS[:OPTIONS]]], where a non-numeric
// PORT is an export name on the default port.
func parseDracut(s string) (Target, error) {
	host, rest, err := splitDracutHost(s)
	if err != nil {
		return Target{}, fmt.Errorf("%w; expected %s", err, dracutForm)
	}
	fields := strings.Split(rest, ":")
	if len(fields) > 4 {
		return Target{}, fmt.Errorf("too many fields; expected %s", dracutForm)
	}
	fields = append(fields, "", "", "")[:4]
	var t Target
	port, export, err := parsePortExport(fields[0])
	if err != nil {
		return Target{}, fmt.Errorf("%w; expected %s", err, dracutForm)
	}
	h, err := checkHost(host)
	if err != nil {
		return Target{}, fmt.Errorf("%w; expected %s", err, dracutForm)
	}
	t.Servers = []Server{{Host: h, Port: port}}
	t.Export = export
	if fields[1] != "" {
		if err := checkFSType(fields[1]); err != nil {
			return Target{}, fmt.Errorf("FSTYPE %w", err)
		}
	}
	t.FSType = fields[1]
	t.RootFlags = fields[2]
	t.Options, err = ParseOptions(fields[3])
	if err != nil {
		return Target{}, fmt.Errorf("OPTIONS: %w", err)
	}
	return t, nil
}

// splitDracutHost splits HOST (maybe a bracketed IPv6 literal) from the
// fields after it.
func splitDracutHost(s string) (host, rest string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", errors.New("'[' without ']' around the IPv6 address")
		}
		host, rest = s[:end+1], s[end+1:]
		if rest != "" && rest[0] != ':' {
			return "", "", fmt.Errorf("%q after ']'", rest)
		}
		return host, strings.TrimPrefix(rest, ":"), nil
	}
	host, rest, _ = strings.Cut(s, ":")
	return host, rest, nil
}

// parsePortExport parses dracut's PORT field: "", "PORT", "PORT/EXPORT",
// "/EXPORT" or an export name.
func parsePortExport(f string) (uint16, string, error) {
	before, after, hasSlash := strings.Cut(f, "/")
	switch {
	case f == "":
		return protocol.DefaultPort, "", nil
	case allDigits(before) && before != "":
		p, err := parsePort(before)
		return p, after, err
	case before == "" && hasSlash:
		return protocol.DefaultPort, after, checkExport(after)
	}
	return protocol.DefaultPort, f, checkExport(f)
}

// parseDebian parses initramfs-tools' HOST,PORT|EXPORT[,nbdX].
func parseDebian(s string) (Target, error) {
	parts := strings.Split(s, ",")
	if len(parts) > 3 {
		return Target{}, fmt.Errorf("too many fields; expected %s", debianForm)
	}
	h, err := checkHost(parts[0])
	if err != nil {
		return Target{}, fmt.Errorf("%w; expected %s", err, debianForm)
	}
	if parts[1] == "" {
		return Target{}, fmt.Errorf("empty PORT|EXPORT; expected %s", debianForm)
	}
	t := Target{Servers: []Server{{Host: h, Port: protocol.DefaultPort}}}
	if allDigits(parts[1]) {
		if t.Servers[0].Port, err = parsePort(parts[1]); err != nil {
			return Target{}, fmt.Errorf("%w; expected %s", err, debianForm)
		}
	} else {
		if err := checkExport(parts[1]); err != nil {
			return Target{}, err
		}
		t.Export = parts[1]
	}
	if len(parts) == 3 {
		d, err := nbdnl.ParseDevice(parts[2])
		if err != nil || d.Partition != 0 {
			return Target{}, fmt.Errorf("device %q; expected nbdN (like nbd0) in %s", parts[2], debianForm)
		}
		t.Device = &d
	}
	return t, nil
}

// parseHostPort parses HOST, HOST:PORT, [IPV6] or [IPV6]:PORT. In URIs
// (uri true) a zone in a bracketed address is written %25.
func parseHostPort(spec string, uri bool) (Server, error) {
	host, port := spec, ""
	if strings.HasPrefix(spec, "[") {
		end := strings.IndexByte(spec, ']')
		if end < 0 {
			return Server{}, errors.New("'[' without ']' around the IPv6 address")
		}
		host, port = spec[:end+1], spec[end+1:]
		if port != "" {
			if port[0] != ':' {
				return Server{}, fmt.Errorf("%q after ']'", port)
			}
			port = port[1:]
			if port == "" {
				return Server{}, errors.New("empty port after ':'")
			}
		}
	} else if strings.Count(spec, ":") > 1 {
		return Server{}, fmt.Errorf("host %q: an IPv6 address must be in brackets, like [fd00::1]", spec)
	} else if i := strings.IndexByte(spec, ':'); i >= 0 {
		host, port = spec[:i], spec[i+1:]
		if port == "" {
			return Server{}, errors.New("empty port after ':'")
		}
	}
	if uri {
		host = strings.ReplaceAll(host, "%25", "%")
	}
	h, err := checkHost(host)
	if err != nil {
		return Server{}, err
	}
	srv := Server{Host: h, Port: protocol.DefaultPort}
	if port != "" {
		if srv.Port, err = parsePort(port); err != nil {
			return Server{}, err
		}
	}
	return srv, nil
}

// checkHost validates a host name, an IPv4 literal or a bracketed IPv6
// literal and returns it without brackets.
func checkHost(h string) (string, error) {
	if h == "" {
		return "", errors.New("empty host")
	}
	if strings.HasPrefix(h, "[") {
		inner := strings.TrimSuffix(h[1:], "]")
		if len(inner) != len(h)-2 {
			return "", fmt.Errorf("host %q: '[' without ']'", h)
		}
		a, err := netip.ParseAddr(inner)
		if err != nil || !a.Is6() {
			return "", fmt.Errorf("host %q: not an IPv6 address", h)
		}
		if z := a.Zone(); !isName(z) && z != "" {
			return "", fmt.Errorf("host %q: zone %q: expected an interface name", h, z)
		}
		return inner, nil
	}
	if strings.Contains(h, ":") {
		return "", fmt.Errorf("host %q: an IPv6 address must be in brackets, like [fd00::1]", h)
	}
	if a, err := netip.ParseAddr(h); err == nil && a.Is4() {
		return h, nil
	}
	if len(h) > 253 {
		return "", fmt.Errorf("host name of %d bytes is too long", len(h))
	}
	if !isName(h) {
		return "", fmt.Errorf("host %q: invalid character; expected letters, digits, '.', '-' and '_'", h)
	}
	return h, nil
}

// isName reports whether s is non-empty and made of letters, digits, '.',
// '-' and '_' (host names, interface names).
func isName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return s != ""
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 || !allDigits(s) {
		return 0, fmt.Errorf("port %q: expected a number from 1 to 65535", s)
	}
	return uint16(n), nil
}

func checkExport(e string) error {
	if len(e) > maxExportLen {
		return fmt.Errorf("export name is %d bytes; the NBD limit is %d", len(e), maxExportLen)
	}
	return nil
}

func checkFSType(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%q: expected a file system type like ext4", s)
		}
	}
	if s == "" || len(s) > 64 {
		return fmt.Errorf("%q: expected a file system type like ext4", s)
	}
	return nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func hostPort(host string, port uint16, withPort bool) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if !withPort {
		return host
	}
	return host + ":" + strconv.Itoa(int(port))
}

// escapeExport percent-encodes an export name for the URI path, keeping
// RFC 3986 unreserved characters and '/'.
func escapeExport(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~/", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func unescapeExport(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("truncated %-escape")
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("bad %%-escape %q", s[i:i+3])
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}
