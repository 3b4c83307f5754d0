package nbdnl

import (
	"strings"
	"testing"

	"github.com/nbdboot/nbdboot/protocol"
)

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
		got, err := BlockSize(tt.min, 0, tt.page)
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

// bs= (want) raises the block size like a server minimum does, and is
// refused above the page size rather than silently lowered.
func TestBlockSizeWanted(t *testing.T) {
	tests := []struct {
		min, want uint32
		bs        uint64
		errWho    string
	}{
		{0, 0, 512, ""},
		{1, 4096, 4096, ""},        // bs=4096
		{4096, 1024, 4096, ""},     // bs= below the minimum: the minimum
		{0, 2048, 2048, ""},        // bs=2048
		{65536, 0, 0, "export"},    // a server minimum above the page size
		{0, 65536, 0, "bs="},       // bs= above the page size
		{1024, 8192, 0, "bs="},     // bs= above the page size and the minimum
		{16384, 8192, 0, "export"}, // the minimum decides
	}
	for _, tt := range tests {
		bs, err := BlockSize(tt.min, tt.want, 4096)
		if bs != tt.bs || (err != nil) != (tt.errWho != "") || err != nil && !strings.Contains(err.Error(), tt.errWho) {
			t.Errorf("BlockSize(%d, %d, 4096) = %d, %v; want %d, error naming %q", tt.min, tt.want, bs, err, tt.bs, tt.errWho)
		}
	}
}

func TestExportConfig(t *testing.T) {
	info := protocol.ExportInfo{Name: "root", Size: 1000000, Flags: protocol.FlagHasFlags | protocol.FlagCanMultiConn, MinBlock: 1024}
	cfg, err := ExportConfig(info, 0, 4096)
	if err != nil || cfg.Size != 999424 || cfg.BlockSize != 1024 || cfg.ServerFlags != ServerFlagHasFlags|ServerFlagCanMultiConn {
		t.Errorf("ExportConfig(%+v) = %+v, %v", info, cfg, err)
	}
	if _, err := ExportConfig(protocol.ExportInfo{Name: "tiny", Size: 100}, 0, 4096); err == nil || !strings.Contains(err.Error(), `"tiny"`) {
		t.Errorf("ExportConfig of a 100-byte export: %v, want an error naming it", err)
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
		bs, dev, err := Geometry(tt.size, tt.min, 0, 4096)
		if bs != tt.bs || dev != tt.dev || (err != nil) != tt.wantErr {
			t.Errorf("Geometry(%d, %d) = %d, %d, %v; want %d, %d, err %v", tt.size, tt.min, bs, dev, err, tt.bs, tt.dev, tt.wantErr)
		}
	}
}
