package boot

import (
	"bytes"
	"errors"
	"testing"
)

// put returns a zeroed image of n bytes with magic at off.
func put(n, off int, magic ...byte) []byte {
	b := make([]byte, n)
	copy(b[off:], magic)
	return b
}

func TestProbeFS(t *testing.T) {
	for _, tc := range []struct {
		name string
		img  []byte
		want string
		err  error
	}{
		// ext4: superblock at 1024, s_magic (le16 0xEF53) at +56 = 1080.
		{"ext4", put(4096, 1080, 0x53, 0xEF), "ext4", nil},
		// Big-endian bytes of the ext magic are not ext.
		{"ext4 byte-swapped", put(4096, 1080, 0xEF, 0x53), "", ErrUnknownFS},
		// squashfs: "hsqs" (le32 0x73717368) at 0.
		{"squashfs", put(4096, 0, 'h', 's', 'q', 's'), "squashfs", nil},
		// xfs: "XFSB" at 0.
		{"xfs", put(4096, 0, 'X', 'F', 'S', 'B'), "xfs", nil},
		// btrfs: "_BHRfS_M" at 64 KiB + 0x40.
		{"btrfs", put(0x11000, 0x10040, '_', 'B', 'H', 'R', 'f', 'S', '_', 'M'), "btrfs", nil},
		// A device shorter than the btrfs superblock still probes ext4.
		{"short ext4", put(2048, 1080, 0x53, 0xEF), "ext4", nil},
		// Too short to hold the ext magic's second byte.
		{"truncated", put(1081, 1080, 0x53), "", ErrUnknownFS},
		{"empty", nil, "", ErrUnknownFS},
		{"zeroes", make([]byte, 0x11000), "", ErrUnknownFS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ProbeFS(bytes.NewReader(tc.img))
			if got != tc.want || !errors.Is(err, tc.err) {
				t.Errorf("ProbeFS = %q, %v; want %q, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func FuzzProbeFS(f *testing.F) {
	f.Add(put(2048, 1080, 0x53, 0xEF))
	f.Add([]byte("hsqs"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fs, err := ProbeFS(bytes.NewReader(b))
		if (fs == "") == (err == nil) {
			t.Fatalf("ProbeFS = %q, %v", fs, err)
		}
	})
}
