package boot

import (
	"strings"
	"testing"

	"github.com/nbdboot/nbdboot/bootcfg"
)

func TestParseRootDevice(t *testing.T) {
	for _, tc := range []struct {
		in        string
		index     int // -1: nil
		partition int
		bad       bool
	}{
		{"", -1, 0, false},
		{"/dev/nbd0", 0, 0, false},
		{"/dev/nbd3", 3, 0, false},
		{"/dev/nbd0p1", 0, 1, false},
		{"/dev/nbd12p15", 12, 15, false},
		{"/dev/nbd", 0, 0, true},
		{"/dev/nbd0p", 0, 0, true},
		{"/dev/nbd0p0", 0, 0, true},
		{"/dev/nbdx", 0, 0, true},
		{"/dev/sda1", 0, 0, true},
		{"/dev/nbd-1", 0, 0, true},
		{"/dev/nbd99999999999", 0, 0, true},
	} {
		rd, err := ParseRootDevice(tc.in)
		if tc.bad {
			if err == nil || !strings.Contains(err.Error(), "root="+tc.in) {
				t.Errorf("ParseRootDevice(%q) = %v, want an error naming root=", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseRootDevice(%q): %v", tc.in, err)
			continue
		}
		if (rd.Index == nil) != (tc.index < 0) || (rd.Index != nil && int(*rd.Index) != tc.index) || rd.Partition != tc.partition {
			t.Errorf("ParseRootDevice(%q) = %v/%d", tc.in, rd.Index, rd.Partition)
		}
	}
}

func FuzzParseRootDevice(f *testing.F) {
	for _, s := range []string{"/dev/nbd0", "/dev/nbd1p2", "/dev/sda"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rd, err := ParseRootDevice(s)
		if err != nil || rd.Index == nil {
			return
		}
		// A parsed device prints back to itself.
		back := DevicePath(*rd.Index)
		if rd.Partition > 0 {
			back = PartitionPath(*rd.Index, rd.Partition)
		}
		rd2, err := ParseRootDevice(back)
		if err != nil || *rd2.Index != *rd.Index || rd2.Partition != rd.Partition {
			t.Fatalf("%q -> %q -> %v, %v", s, back, rd2, err)
		}
	})
}

func TestTarget(t *testing.T) {
	for _, tc := range []struct {
		t         bootcfg.Address
		addr, uri string
	}{
		{bootcfg.Address{Server: bootcfg.Server{Host: "10.0.2.2", Port: 10809}, Export: "root"}, "10.0.2.2:10809", "nbd://10.0.2.2:10809/root"},
		{bootcfg.Address{Server: bootcfg.Server{Host: "fd00::1", Port: 1234}, Export: "a b"}, "[fd00::1]:1234", "nbd://[fd00::1]:1234/a%20b"},
		{bootcfg.Address{Server: bootcfg.Server{Host: "srv", Port: 10809}}, "srv:10809", "nbd://srv:10809/"},
	} {
		if a := tc.t.Addr(); a != tc.addr {
			t.Errorf("Addr = %q, want %q", a, tc.addr)
		}
		if u := tc.t.String(); u != tc.uri {
			t.Errorf("URI = %q, want %q", u, tc.uri)
		}
	}
}
