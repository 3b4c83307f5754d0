package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// RequestHeaderSize is the size of a transmission request header.
const RequestHeaderSize = 28

// ErrBadMagic is returned when a header does not start with the expected magic.
var ErrBadMagic = errors.New("bad magic")

// Request is a transmission request header. A WRITE's payload of Length
// bytes follows it on the wire and is not part of this value.
type Request struct {
	Flags  uint16
	Type   uint16
	Cookie uint64
	Offset uint64
	Length uint32
}

// AppendRequest appends the 28-byte encoding of r to b.
func AppendRequest(b []byte, r Request) []byte {
	b = binary.BigEndian.AppendUint32(b, RequestMagic)
	b = binary.BigEndian.AppendUint16(b, r.Flags)
	b = binary.BigEndian.AppendUint16(b, r.Type)
	b = binary.BigEndian.AppendUint64(b, r.Cookie)
	b = binary.BigEndian.AppendUint64(b, r.Offset)
	b = binary.BigEndian.AppendUint32(b, r.Length)
	return b
}

// ParseRequest decodes a request header from b, which must hold at least
// RequestHeaderSize bytes.
func ParseRequest(b []byte) (Request, error) {
	if len(b) < RequestHeaderSize {
		return Request{}, fmt.Errorf("parse request: %d bytes, need %d: %w", len(b), RequestHeaderSize, io.ErrUnexpectedEOF)
	}
	if m := binary.BigEndian.Uint32(b[0:4]); m != RequestMagic {
		return Request{}, fmt.Errorf("parse request: magic %#08x: %w", m, ErrBadMagic)
	}
	return Request{
		Flags:  binary.BigEndian.Uint16(b[4:6]),
		Type:   binary.BigEndian.Uint16(b[6:8]),
		Cookie: binary.BigEndian.Uint64(b[8:16]),
		Offset: binary.BigEndian.Uint64(b[16:24]),
		Length: binary.BigEndian.Uint32(b[24:28]),
	}, nil
}

// ReadRequest reads one request header from r into the scratch buffer buf
// (at least RequestHeaderSize bytes; a shorter one is replaced) and decodes
// it.
func ReadRequest(r io.Reader, buf []byte) (Request, error) {
	if len(buf) < RequestHeaderSize {
		buf = make([]byte, RequestHeaderSize)
	}
	if _, err := io.ReadFull(r, buf[:RequestHeaderSize]); err != nil {
		return Request{}, err
	}
	return ParseRequest(buf[:RequestHeaderSize])
}

// CommandName returns the spec's name of a command, for logs.
func CommandName(t uint16) string {
	switch t {
	case CmdRead:
		return "READ"
	case CmdWrite:
		return "WRITE"
	case CmdDisc:
		return "DISC"
	case CmdFlush:
		return "FLUSH"
	case CmdTrim:
		return "TRIM"
	case CmdCache:
		return "CACHE"
	case CmdWriteZeroes:
		return "WRITE_ZEROES"
	case CmdBlockStatus:
		return "BLOCK_STATUS"
	case CmdResize:
		return "RESIZE"
	}
	return fmt.Sprintf("CMD(%d)", t)
}
