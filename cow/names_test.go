package cow

import (
	"strings"
	"testing"
)

func TestFileName(t *testing.T) {
	long := strings.Repeat("x", 255)
	cases := []struct {
		name, want string
	}{
		{"52:54:00:12:34:56", "52:54:00:12:34:56"}, // MAC address
		{"192.168.1.20", "192.168.1.20"},           // IPv4
		{"fe80::1%eth0", "fe80::1%25eth0"},         // '%' is escaped
		{".hidden", "%2Ehidden"},                   // no leading dot
		{"a..b", "a..b"},                           // dots inside are harmless
		{"pc 01", "pc%2001"},                       // space
		{"ü", "%C3%BC"},                            // UTF-8 bytes
		{"back\\slash", "back%5Cslash"},            // backslash
		{long, ""},                                 // hashed: checked below
	}
	for _, c := range cases {
		got, err := fileName("client", c.name, MaxClientLen)
		if err != nil {
			t.Fatalf("%q: %v", c.name, err)
		}
		if c.name == long {
			if !strings.HasPrefix(got, "%h") || len(got) != 66 {
				t.Errorf("%q...: %q, want %%h and 64 hex digits", c.name[:8], got)
			}
			continue
		}
		if got != c.want {
			t.Errorf("%q: %q, want %q", c.name, got, c.want)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "/", "../x", "a\x00b", long + "y"} {
		if got, err := fileName("client", bad, MaxClientLen); err == nil {
			t.Errorf("%q: accepted as %q", bad, got)
		}
	}
	a, _ := fileName("client", strings.Repeat("é", 100), MaxClientLen)
	b, _ := fileName("client", strings.Repeat("é", 99)+"e", MaxClientLen)
	if a == b {
		t.Error("two long names hash alike")
	}
}

func FuzzFileName(f *testing.F) {
	for _, s := range []string{"52:54:00:12:34:56", "..", "a/b", ".x", "%h00", strings.Repeat("%", 100)} {
		f.Add(s)
	}
	seen := map[string]string{}
	f.Fuzz(func(t *testing.T, name string) {
		got, err := fileName("client", name, MaxClientLen)
		if err != nil {
			return
		}
		if got == "" || got == "." || got == ".." || len(got) > 255 || strings.ContainsAny(got, "/\x00") || got[0] == '.' {
			t.Fatalf("%q -> unsafe file name %q", name, got)
		}
		if other, ok := seen[got]; ok && other != name {
			t.Fatalf("%q and %q both -> %q", name, other, got)
		}
		seen[got] = name
	})
}
