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
