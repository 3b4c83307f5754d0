package nbdnl

import "testing"

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
