package nbdnl

import "testing"

func TestBlockSize(t *testing.T) {
	tests := []struct {
		min     uint32
		page    int
		want    uint64
		wantErr bool
	}{
		{0, 4096, 512, false},    // not advertised
		{1, 4096, 512, false},    // byte-granular server
		{512, 4096, 512, false},  // the usual
		{513, 4096, 1024, false}, // rounded up to a power of two
		{1024, 4096, 1024, false},
		{4096, 4096, 4096, false},
		{4096, 65536, 4096, false},
		{8192, 4096, 0, true}, // above the page size
		{65536, 65536, 65536, false},
	}
	for _, tt := range tests {
		got, err := BlockSize(tt.min, tt.page)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("BlockSize(%d, %d) = %d, %v; want %d, err %v", tt.min, tt.page, got, err, tt.want, tt.wantErr)
		}
		if err == nil {
			if err := ValidBlockSize(got, tt.page); err != nil {
				t.Errorf("BlockSize(%d, %d) = %d, which ValidBlockSize rejects: %v", tt.min, tt.page, got, err)
			}
		}
	}
}

func TestValidBlockSize(t *testing.T) {
	for _, bs := range []uint64{0, 512, 1024, 2048, 4096} {
		if err := ValidBlockSize(bs, 4096); err != nil {
			t.Errorf("ValidBlockSize(%d) = %v", bs, err)
		}
	}
	for _, bs := range []uint64{1, 256, 511, 768, 3000, 8192, 1 << 40} {
		if err := ValidBlockSize(bs, 4096); err == nil {
			t.Errorf("ValidBlockSize(%d) accepted", bs)
		}
	}
}

func TestGeometry(t *testing.T) {
	tests := []struct {
		size    uint64
		min     uint32
		bs, dev uint64
		wantErr bool
	}{
		{1 << 30, 0, 512, 1 << 30, false},
		{1000000, 0, 512, 999936, false},
		{1000000, 4096, 4096, 999424, false},
		{511, 0, 0, 0, true},
		{4095, 4096, 0, 0, true},
		{1 << 30, 8192, 0, 0, true},
	}
	for _, tt := range tests {
		bs, dev, err := Geometry(tt.size, tt.min, 4096)
		if bs != tt.bs || dev != tt.dev || (err != nil) != tt.wantErr {
			t.Errorf("Geometry(%d, %d) = %d, %d, %v; want %d, %d, err %v", tt.size, tt.min, bs, dev, err, tt.bs, tt.dev, tt.wantErr)
		}
	}
}
