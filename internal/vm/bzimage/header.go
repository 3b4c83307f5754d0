package bzimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Offsets in the real-mode header (Documentation/arch/x86/boot.rst).
const (
	offSetupSects    = 0x1f1 // u8, 0 means 4
	offMagic         = 0x202 // "HdrS"
	offVersion       = 0x206 // u16, boot protocol version
	offPayloadOffset = 0x248 // u32, from the start of the protected-mode code
	offPayloadLength = 0x24c // u32
	headerEnd        = 0x250 // the header must reach past payload_length

	minVersion = 0x0208 // payload_offset/length appeared in 2.08
)

// ErrNotBzImage reports an input that lacks the boot protocol header.
var ErrNotBzImage = errors.New("not a bzImage (no HdrS header)")

// Format names a compression scheme of the kernel payload.
type Format string

// Formats the kernel may be built with (CONFIG_KERNEL_*).
const (
	Gzip    Format = "gzip"
	XZ      Format = "xz"
	Zstd    Format = "zstd"
	LZ4     Format = "lz4"
	Bzip2   Format = "bzip2"
	LZMA    Format = "lzma"
	LZO     Format = "lzo"
	Unknown Format = "unknown"
)

// magics are the payload prefixes the kernel's compressors write.
var magics = []struct {
	prefix []byte
	format Format
}{
	{[]byte{0x1f, 0x8b}, Gzip},
	{[]byte{0xfd, '7', 'z', 'X', 'Z', 0x00}, XZ},
	{[]byte{0x28, 0xb5, 0x2f, 0xfd}, Zstd},
	{[]byte{0x02, 0x21, 0x4c, 0x18}, LZ4},
	{[]byte("BZh"), Bzip2},
	{[]byte{0x5d, 0x00, 0x00}, LZMA},
	{[]byte{0x89, 'L', 'Z', 'O'}, LZO},
}

// Detect names the compression of a payload by its magic number.
func Detect(p []byte) Format {
	for _, m := range magics {
		if bytes.HasPrefix(p, m.prefix) {
			return m.format
		}
	}
	return Unknown
}

// Payload returns the compressed kernel inside bzImage b (a sub-slice of b)
// and its compression format.
func Payload(b []byte) ([]byte, Format, error) {
	if len(b) < headerEnd {
		return nil, Unknown, fmt.Errorf("bzImage header: %d bytes, need %d: %w", len(b), headerEnd, ErrNotBzImage)
	}
	if string(b[offMagic:offMagic+4]) != "HdrS" {
		return nil, Unknown, ErrNotBzImage
	}
	if v := binary.LittleEndian.Uint16(b[offVersion:]); v < minVersion {
		return nil, Unknown, fmt.Errorf("bzImage boot protocol %d.%02d has no payload fields (need 2.08)", v>>8, v&0xff)
	}
	setup := int(b[offSetupSects])
	if setup == 0 {
		setup = 4
	}
	start := uint64(setup+1) * 512
	off := start + uint64(binary.LittleEndian.Uint32(b[offPayloadOffset:]))
	n := uint64(binary.LittleEndian.Uint32(b[offPayloadLength:]))
	if n == 0 || off+n > uint64(len(b)) {
		return nil, Unknown, fmt.Errorf("bzImage payload [%d, %d) outside the %d-byte file", off, off+n, len(b))
	}
	p := b[off : off+n]
	return p, Detect(p), nil
}
