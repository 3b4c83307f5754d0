package boot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Superblock magics, by offset from the start of the device.
const (
	squashfsMagicOff = 0 // "hsqs": squashfs little-endian magic 0x73717368
	xfsMagicOff      = 0 // "XFSB"
	extMagicOff      = 1080
	extMagic         = 0xEF53 // le16 s_magic at 1024+56, ext2/3/4
	btrfsMagicOff    = 0x10040
	probeLen         = btrfsMagicOff + 8 // the farthest magic's end
)

// ErrUnknownFS means no known superblock was found.
var ErrUnknownFS = errors.New("no ext4, squashfs, xfs or btrfs superblock found")

// ProbeFS reads the start of a device and names its filesystem type, as
// mount(2) wants it ("ext4" also covers ext2 and ext3).
func ProbeFS(r io.ReaderAt) (string, error) {
	buf := make([]byte, probeLen)
	n, err := r.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read superblock: %w", err)
	}
	return probeBytes(buf[:n])
}

func probeBytes(b []byte) (string, error) {
	has := func(off int, magic string) bool {
		return len(b) >= off+len(magic) && bytes.Equal(b[off:off+len(magic)], []byte(magic))
	}
	switch {
	case has(squashfsMagicOff, "hsqs"):
		return "squashfs", nil
	case has(xfsMagicOff, "XFSB"):
		return "xfs", nil
	case len(b) >= extMagicOff+2 && binary.LittleEndian.Uint16(b[extMagicOff:]) == extMagic:
		return "ext4", nil
	case has(btrfsMagicOff, "_BHRfS_M"):
		return "btrfs", nil
	}
	return "", ErrUnknownFS
}
