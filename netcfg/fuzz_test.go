package netcfg

import (
	"strings"
	"testing"
)

// FuzzParseIP checks that ParseIP never panics, that errors name ip=, and
// that every accepted value survives a String/ParseIP round trip.
func FuzzParseIP(f *testing.F) {
	for _, s := range []string{
		"dhcp", "off", "none", "eth0:dhcp", "eth0:dhcp6", "::",
		"10.0.0.2:10.0.0.1:10.0.0.254:255.255.255.0:client1:eth0:off:10.0.0.53:10.0.0.54:10.0.0.123",
		"[fd00::2]::[fd00::1]:64:h6:eth0:off:[fd00::53]",
		"10.0.0.2::10.0.0.1:24", "[::ffff:1.2.3.4]", "10.0.0.2:::0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		c, err := ParseIP(in)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "ip=") {
				t.Fatalf("ParseIP(%q) error %q does not start with ip=", in, err)
			}
			return
		}
		s := c.String()
		c2, err := ParseIP(s)
		if err != nil {
			t.Fatalf("ParseIP(%q) = %+v, String() = %q does not parse: %v", in, c, s, err)
		}
		if c2 != c {
			t.Fatalf("round trip of %q: %+v -> %q -> %+v", in, c, s, c2)
		}
		if s2 := c2.String(); s2 != s {
			t.Fatalf("String not stable for %q: %q then %q", in, s, s2)
		}
	})
}
