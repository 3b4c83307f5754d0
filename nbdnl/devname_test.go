package nbdnl

import (
	"strings"
	"testing"
)

func TestDeviceIndex(t *testing.T) {
	tests := []struct {
		in      string
		want    uint32
		wantErr bool
	}{
		{"/dev/nbd0", 0, false},
		{"/dev/nbd3", 3, false},
		{"nbd15", 15, false},
		{"/dev/nbd4294967295", 4294967295, false},
		{"/dev/nbd4294967296", 0, true},
		{"/dev/nbd", 0, true},
		{"/dev/nbd0p1", 0, true},
		{"/dev/nbd01", 0, true},
		{"/dev/nbd-1", 0, true},
		{"/dev/sda", 0, true},
		{"/dev/nbd 1", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := DeviceIndex(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("DeviceIndex(%q) = %d, %v; want %d, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	if got := DevicePath(7); got != "/dev/nbd7" {
		t.Errorf("DevicePath(7) = %q", got)
	}
}

func TestParseDevice(t *testing.T) {
	tests := []struct {
		in   string
		want Device
		bad  bool
	}{
		{in: "/dev/nbd0", want: Device{0, 0}},
		{in: "nbd7", want: Device{7, 0}},
		{in: "/dev/nbd12p15", want: Device{12, 15}},
		{in: "/dev/nbd0p65535", want: Device{0, 65535}},
		{in: "/dev/nbd0p65536", bad: true},
		{in: "/dev/nbd0p0", bad: true},
		{in: "/dev/nbd0p01", bad: true},
		{in: "/dev/nbd0p", bad: true},
		{in: "/dev/nbdp1", bad: true},
		{in: "/dev/nbdx", bad: true},
		{in: "/dev/sda1", bad: true},
		{in: "/dev/nbd99999999999", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseDevice(tt.in)
		if tt.bad {
			if err == nil || !strings.Contains(err.Error(), tt.in) {
				t.Errorf("ParseDevice(%q) = %+v, %v; want an error naming it", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseDevice(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func FuzzParseDevice(f *testing.F) {
	for _, s := range []string{"/dev/nbd0", "/dev/nbd1p2", "nbd3", "/dev/sda"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDevice(s)
		if err != nil {
			return
		}
		// A parsed device prints back to a name that parses to it.
		again, err := ParseDevice(d.Path())
		if err != nil || again != d {
			t.Fatalf("ParseDevice(%q) = %+v; its Path %q parses to %+v, %v", s, d, d.Path(), again, err)
		}
	})
}
