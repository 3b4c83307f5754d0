package protocol

import (
	"encoding/binary"
	"fmt"
)

// This file holds the payloads of structured reply chunks, and the
// encoders of whole chunks (header and payload) that servers send.

// Sizes of fixed parts of chunk payloads.
const (
	OffsetDataPrefixSize = 8  // u64 offset, then data
	OffsetHoleSize       = 12 // u64 offset | u32 length
	ChunkErrorMinSize    = 6  // u32 error | u16 message length
	BlockStatusDescSize  = 8  // u32 length | u32 flags
)

// MaxBlockStatusExtents bounds the descriptors accepted in one
// BLOCK_STATUS chunk (a client-side bound; servers send far fewer).
const MaxBlockStatusExtents = 1 << 16

// AppendOffsetHole appends an OFFSET_HOLE payload (u64 offset | u32 length).
func AppendOffsetHole(b []byte, offset uint64, length uint32) []byte {
	b = binary.BigEndian.AppendUint64(b, offset)
	return binary.BigEndian.AppendUint32(b, length)
}

// ParseOffsetHole decodes an OFFSET_HOLE payload; the length must be nonzero.
func ParseOffsetHole(b []byte) (offset uint64, length uint32, err error) {
	if len(b) != OffsetHoleSize {
		return 0, 0, fmt.Errorf("parse OFFSET_HOLE: %d bytes, want %d: %w", len(b), OffsetHoleSize, ErrInvalid)
	}
	offset, length = binary.BigEndian.Uint64(b[0:8]), binary.BigEndian.Uint32(b[8:12])
	if length == 0 {
		return 0, 0, fmt.Errorf("parse OFFSET_HOLE: zero length: %w", ErrInvalid)
	}
	return offset, length, nil
}

// Extent is a run of an export with one allocation state: one
// BLOCK_STATUS descriptor of base:allocation, and what a server's storage
// reports for a range.
type Extent struct {
	Length uint32
	Flags  uint32 // StateHole, StateZero
}

// StateHoleZero are the flags of an unallocated run that reads as zeroes.
const StateHoleZero = StateHole | StateZero

// Zero reports whether the run reads as zeroes.
func (e Extent) Zero() bool { return e.Flags&StateZero != 0 }

// maxExtentLength is the longest run AddExtent makes (4 GiB less a page,
// so that runs stay aligned).
const maxExtentLength = 1<<32 - 4096

// AddExtent appends a run of n bytes with flags to ext, merging it into
// the last run when their flags match; runs longer than a descriptor can
// hold are split. n <= 0 adds nothing.
func AddExtent(ext []Extent, n int64, flags uint32) []Extent {
	for n > 0 {
		if k := len(ext); k > 0 && ext[k-1].Flags == flags && ext[k-1].Length < maxExtentLength {
			add := min(n, maxExtentLength-int64(ext[k-1].Length))
			ext[k-1].Length += uint32(add)
			n -= add
			continue
		}
		add := min(n, maxExtentLength)
		ext = append(ext, Extent{Length: uint32(add), Flags: flags})
		n -= add
	}
	return ext
}

// AppendBlockStatus appends a BLOCK_STATUS payload (u32 context ID |
// descriptors of u32 length | u32 flags) to b.
func AppendBlockStatus(b []byte, contextID uint32, extents []Extent) []byte {
	b = binary.BigEndian.AppendUint32(b, contextID)
	for _, e := range extents {
		b = binary.BigEndian.AppendUint32(b, e.Length)
		b = binary.BigEndian.AppendUint32(b, e.Flags)
	}
	return b
}

// ParseBlockStatus decodes a BLOCK_STATUS payload, appending the
// descriptors to dst. There must be at least one, at most
// MaxBlockStatusExtents, and none of length zero.
func ParseBlockStatus(b []byte, dst []Extent) (contextID uint32, extents []Extent, err error) {
	if len(b) < 4+BlockStatusDescSize || (len(b)-4)%BlockStatusDescSize != 0 {
		return 0, dst, fmt.Errorf("parse BLOCK_STATUS: %d bytes, want 4 + a positive multiple of 8: %w", len(b), ErrInvalid)
	}
	n := (len(b) - 4) / BlockStatusDescSize
	if n > MaxBlockStatusExtents {
		return 0, dst, fmt.Errorf("parse BLOCK_STATUS: %d extents > %d: %w", n, MaxBlockStatusExtents, ErrTooMany)
	}
	contextID = binary.BigEndian.Uint32(b[0:4])
	for off := 4; off < len(b); off += BlockStatusDescSize {
		e := Extent{Length: binary.BigEndian.Uint32(b[off:]), Flags: binary.BigEndian.Uint32(b[off+4:])}
		if e.Length == 0 {
			return 0, dst, fmt.Errorf("parse BLOCK_STATUS: extent of length zero: %w", ErrInvalid)
		}
		dst = append(dst, e)
	}
	return contextID, dst, nil
}

// ChunkErr is the payload of an ERROR or ERROR_OFFSET chunk.
type ChunkErr struct {
	Errno   uint32
	Message string
	// Offset is set for ERROR_OFFSET chunks.
	Offset    uint64
	HasOffset bool
}

// AppendChunkError appends an ERROR payload (u32 error | u16 message length
// | message), or an ERROR_OFFSET one (the same then u64 offset) when
// e.HasOffset. Messages longer than MaxStringLen are cut.
func AppendChunkError(b []byte, e ChunkErr) []byte {
	msg := e.Message
	if len(msg) > MaxStringLen {
		msg = msg[:MaxStringLen]
	}
	b = binary.BigEndian.AppendUint32(b, e.Errno)
	b = binary.BigEndian.AppendUint16(b, uint16(len(msg)))
	b = append(b, msg...)
	if e.HasOffset {
		b = binary.BigEndian.AppendUint64(b, e.Offset)
	}
	return b
}

// ParseChunkError decodes the payload of an error chunk of type typ
// (ChunkError, ChunkErrorOffset, or another type with bit 15 set, whose
// trailing fields are skipped).
func ParseChunkError(typ uint16, b []byte) (ChunkErr, error) {
	if typ&0x8000 == 0 {
		return ChunkErr{}, fmt.Errorf("parse error chunk: type %d is not an error type: %w", typ, ErrInvalid)
	}
	if len(b) < ChunkErrorMinSize {
		return ChunkErr{}, fmt.Errorf("parse error chunk: %d bytes, need at least %d: %w", len(b), ChunkErrorMinSize, ErrInvalid)
	}
	e := ChunkErr{Errno: binary.BigEndian.Uint32(b[0:4])}
	n := int(binary.BigEndian.Uint16(b[4:6]))
	if n > MaxStringLen {
		return ChunkErr{}, fmt.Errorf("parse error chunk: message length %d > %d: %w", n, MaxStringLen, ErrTooLong)
	}
	rest := b[6:]
	if n > len(rest) {
		return ChunkErr{}, fmt.Errorf("parse error chunk: message length %d exceeds the %d bytes left: %w", n, len(rest), ErrInvalid)
	}
	e.Message, rest = string(rest[:n]), rest[n:]
	switch typ {
	case ChunkError:
		if len(rest) != 0 {
			return ChunkErr{}, fmt.Errorf("parse ERROR chunk: %d trailing bytes: %w", len(rest), ErrInvalid)
		}
	case ChunkErrorOffset:
		if len(rest) != 8 {
			return ChunkErr{}, fmt.Errorf("parse ERROR_OFFSET chunk: %d bytes after the message, want 8: %w", len(rest), ErrInvalid)
		}
		e.Offset, e.HasOffset = binary.BigEndian.Uint64(rest), true
	}
	return e, nil
}

// Whole chunks. Each encoder appends a chunk header and its payload to b
// (for OFFSET_DATA the payload's prefix: the data follows in a buffer of
// its own, so that it is never copied). flags is 0 or ChunkFlagDone.

// AppendOffsetDataHeader appends an OFFSET_DATA chunk header and offset
// for n data bytes, which the caller sends next.
func AppendOffsetDataHeader(b []byte, flags uint16, cookie, offset uint64, n int) []byte {
	b = AppendChunk(b, Chunk{Flags: flags, Type: ChunkOffsetData, Cookie: cookie, Length: uint32(OffsetDataPrefixSize + n)})
	return binary.BigEndian.AppendUint64(b, offset)
}

// AppendOffsetHoleChunk appends an OFFSET_HOLE chunk.
func AppendOffsetHoleChunk(b []byte, flags uint16, cookie, offset uint64, length uint32) []byte {
	b = AppendChunk(b, Chunk{Flags: flags, Type: ChunkOffsetHole, Cookie: cookie, Length: OffsetHoleSize})
	return AppendOffsetHole(b, offset, length)
}

// AppendErrorChunk appends an ERROR (or ERROR_OFFSET, with e.HasOffset)
// chunk.
func AppendErrorChunk(b []byte, flags uint16, cookie uint64, e ChunkErr) []byte {
	typ := ChunkError
	if e.HasOffset {
		typ = ChunkErrorOffset
	}
	start := len(b)
	b = AppendChunk(b, Chunk{Flags: flags, Type: typ, Cookie: cookie})
	b = AppendChunkError(b, e)
	return patchChunkLength(b, start)
}

// AppendBlockStatusChunk appends a BLOCK_STATUS chunk for one context.
func AppendBlockStatusChunk(b []byte, flags uint16, cookie uint64, contextID uint32, extents []Extent) []byte {
	start := len(b)
	b = AppendChunk(b, Chunk{Flags: flags, Type: ChunkBlockStatus, Cookie: cookie})
	b = AppendBlockStatus(b, contextID, extents)
	return patchChunkLength(b, start)
}

// AppendNoneChunk appends a final NONE chunk: the structured reply to a
// request that has nothing more to send.
func AppendNoneChunk(b []byte, cookie uint64) []byte {
	return AppendChunk(b, Chunk{Flags: ChunkFlagDone, Type: ChunkNone, Cookie: cookie})
}

// patchChunkLength sets the length field of the chunk starting at
// b[start] to the bytes that follow its header.
func patchChunkLength(b []byte, start int) []byte {
	binary.BigEndian.PutUint32(b[start+16:], uint32(len(b)-start-ChunkHeaderSize))
	return b
}
