package protocol

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Reply header sizes.
const (
	SimpleReplyHeaderSize = 16
	ChunkHeaderSize       = 20
)

// AppendSimpleReply appends a 16-byte simple reply header to b.
func AppendSimpleReply(b []byte, errno uint32, cookie uint64) []byte {
	b = binary.BigEndian.AppendUint32(b, SimpleReplyMagic)
	b = binary.BigEndian.AppendUint32(b, errno)
	b = binary.BigEndian.AppendUint64(b, cookie)
	return b
}

// Chunk is a structured reply chunk header; Length bytes of payload follow.
type Chunk struct {
	Flags  uint16
	Type   uint16
	Cookie uint64
	Length uint32
}

// AppendChunk appends a 20-byte structured reply chunk header to b.
func AppendChunk(b []byte, c Chunk) []byte {
	b = binary.BigEndian.AppendUint32(b, StructuredReplyMagic)
	b = binary.BigEndian.AppendUint16(b, c.Flags)
	b = binary.BigEndian.AppendUint16(b, c.Type)
	b = binary.BigEndian.AppendUint64(b, c.Cookie)
	b = binary.BigEndian.AppendUint32(b, c.Length)
	return b
}

// ReplyHeader is either a simple reply (Structured false; Errno set) or a
// structured reply chunk header (Structured true; Chunk set).
type ReplyHeader struct {
	Structured bool
	Errno      uint32
	Cookie     uint64
	Chunk      Chunk
}

// ReadReplyHeader reads a simple reply or a structured chunk header from r.
// buf is scratch space of at least ChunkHeaderSize bytes (a shorter one is
// replaced).
func ReadReplyHeader(r io.Reader, buf []byte) (ReplyHeader, error) {
	if len(buf) < ChunkHeaderSize {
		buf = make([]byte, ChunkHeaderSize)
	}
	if _, err := io.ReadFull(r, buf[:4]); err != nil {
		return ReplyHeader{}, err
	}
	switch m := binary.BigEndian.Uint32(buf[:4]); m {
	case SimpleReplyMagic:
		if _, err := io.ReadFull(r, buf[4:SimpleReplyHeaderSize]); err != nil {
			return ReplyHeader{}, err
		}
		return ReplyHeader{
			Errno:  binary.BigEndian.Uint32(buf[4:8]),
			Cookie: binary.BigEndian.Uint64(buf[8:16]),
		}, nil
	case StructuredReplyMagic:
		if _, err := io.ReadFull(r, buf[4:ChunkHeaderSize]); err != nil {
			return ReplyHeader{}, err
		}
		c := Chunk{
			Flags:  binary.BigEndian.Uint16(buf[4:6]),
			Type:   binary.BigEndian.Uint16(buf[6:8]),
			Cookie: binary.BigEndian.Uint64(buf[8:16]),
			Length: binary.BigEndian.Uint32(buf[16:20]),
		}
		return ReplyHeader{Structured: true, Cookie: c.Cookie, Chunk: c}, nil
	default:
		return ReplyHeader{}, fmt.Errorf("read reply: magic %#08x: %w", m, ErrBadMagic)
	}
}
