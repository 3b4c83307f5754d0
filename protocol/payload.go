package protocol

import (
	"encoding/binary"
	"fmt"
)

// This file holds the data carried by options and option replies.

// InfoRequest is the data of NBD_OPT_INFO and NBD_OPT_GO:
// u32 name length | name | u16 count | count × u16 NBD_INFO type.
type InfoRequest struct {
	Name  string
	Infos []uint16
}

// AppendInfoRequest appends the encoding of r to b.
func AppendInfoRequest(b []byte, r InfoRequest) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Name)))
	b = append(b, r.Name...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.Infos)))
	for _, i := range r.Infos {
		b = binary.BigEndian.AppendUint16(b, i)
	}
	return b
}

// ParseInfoRequest decodes INFO/GO data. The name is bounded by
// MaxStringLen (ErrTooLong), the count by MaxInfoRequests (ErrTooMany), and
// b must hold exactly the encoded request (ErrInvalid).
func ParseInfoRequest(b []byte) (InfoRequest, error) {
	if len(b) < 6 {
		return InfoRequest{}, fmt.Errorf("parse info request: %d bytes, need at least 6: %w", len(b), ErrInvalid)
	}
	nameLen := uint64(binary.BigEndian.Uint32(b[0:4]))
	if nameLen > MaxStringLen {
		return InfoRequest{}, fmt.Errorf("parse info request: name length %d > %d: %w", nameLen, MaxStringLen, ErrTooLong)
	}
	if uint64(len(b)) < 4+nameLen+2 {
		return InfoRequest{}, fmt.Errorf("parse info request: name length %d exceeds data length %d: %w", nameLen, len(b), ErrInvalid)
	}
	off := 4 + int(nameLen)
	r := InfoRequest{Name: string(b[4:off])}
	n := int(binary.BigEndian.Uint16(b[off : off+2]))
	off += 2
	if n > MaxInfoRequests {
		return InfoRequest{}, fmt.Errorf("parse info request: %d info requests > %d: %w", n, MaxInfoRequests, ErrTooMany)
	}
	if len(b)-off != 2*n {
		return InfoRequest{}, fmt.Errorf("parse info request: %d info requests need %d bytes, have %d: %w", n, 2*n, len(b)-off, ErrInvalid)
	}
	if n > 0 {
		r.Infos = make([]uint16, n)
		for i := range r.Infos {
			r.Infos[i] = binary.BigEndian.Uint16(b[off+2*i:])
		}
	}
	return r, nil
}

// Info is the data of one NBD_REP_INFO reply: u16 type | payload. Which
// fields are meaningful depends on Type; unknown types carry nothing else.
type Info struct {
	Type uint16
	// InfoExport: u64 size | u16 transmission flags.
	Size  uint64
	Flags uint16
	// InfoName, InfoDescription: the string.
	Text string
	// InfoBlockSize: u32 minimum | u32 preferred | u32 maximum.
	MinBlock, PrefBlock, MaxBlock uint32
}

// Sizes of fixed-size NBD_REP_INFO data, type included.
const (
	infoExportLen    = 12
	infoBlockSizeLen = 14
)

// AppendInfo appends the NBD_REP_INFO data for in to b according to its Type.
func AppendInfo(b []byte, in Info) []byte {
	b = binary.BigEndian.AppendUint16(b, in.Type)
	switch in.Type {
	case InfoExport:
		b = binary.BigEndian.AppendUint64(b, in.Size)
		b = binary.BigEndian.AppendUint16(b, in.Flags)
	case InfoName, InfoDescription:
		b = append(b, in.Text...)
	case InfoBlockSize:
		b = binary.BigEndian.AppendUint32(b, in.MinBlock)
		b = binary.BigEndian.AppendUint32(b, in.PrefBlock)
		b = binary.BigEndian.AppendUint32(b, in.MaxBlock)
	}
	return b
}

// ParseInfo decodes NBD_REP_INFO data. Unknown types are returned with only
// Type set and no error: the client must ignore them.
func ParseInfo(b []byte) (Info, error) {
	if len(b) < 2 {
		return Info{}, fmt.Errorf("parse info reply: %d bytes, need at least 2: %w", len(b), ErrInvalid)
	}
	in := Info{Type: binary.BigEndian.Uint16(b[0:2])}
	switch in.Type {
	case InfoExport:
		if len(b) != infoExportLen {
			return Info{}, fmt.Errorf("parse info reply EXPORT: %d bytes, want %d: %w", len(b), infoExportLen, ErrInvalid)
		}
		in.Size = binary.BigEndian.Uint64(b[2:10])
		in.Flags = binary.BigEndian.Uint16(b[10:12])
	case InfoName, InfoDescription:
		if len(b)-2 > MaxStringLen {
			return Info{}, fmt.Errorf("parse info reply %d: string length %d > %d: %w", in.Type, len(b)-2, MaxStringLen, ErrTooLong)
		}
		in.Text = string(b[2:])
	case InfoBlockSize:
		if len(b) != infoBlockSizeLen {
			return Info{}, fmt.Errorf("parse info reply BLOCK_SIZE: %d bytes, want %d: %w", len(b), infoBlockSizeLen, ErrInvalid)
		}
		in.MinBlock = binary.BigEndian.Uint32(b[2:6])
		in.PrefBlock = binary.BigEndian.Uint32(b[6:10])
		in.MaxBlock = binary.BigEndian.Uint32(b[10:14])
	}
	return in, nil
}

// AppendServerReply appends NBD_REP_SERVER data (u32 name length | name |
// description) to b.
func AppendServerReply(b []byte, name, description string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(name)))
	b = append(b, name...)
	return append(b, description...)
}

// ParseServerReply decodes NBD_REP_SERVER data.
func ParseServerReply(b []byte) (name, description string, err error) {
	if len(b) < 4 {
		return "", "", fmt.Errorf("parse server reply: %d bytes, need at least 4: %w", len(b), ErrInvalid)
	}
	n := uint64(binary.BigEndian.Uint32(b[0:4]))
	if n > MaxStringLen {
		return "", "", fmt.Errorf("parse server reply: name length %d > %d: %w", n, MaxStringLen, ErrTooLong)
	}
	if n > uint64(len(b)-4) {
		return "", "", fmt.Errorf("parse server reply: name length %d exceeds data length %d: %w", n, len(b)-4, ErrInvalid)
	}
	rest := b[4+n:]
	if len(rest) > MaxStringLen {
		return "", "", fmt.Errorf("parse server reply: description length %d > %d: %w", len(rest), MaxStringLen, ErrTooLong)
	}
	return string(b[4 : 4+n]), string(rest), nil
}

// MetaContextRequest is the data of NBD_OPT_LIST_META_CONTEXT and
// NBD_OPT_SET_META_CONTEXT: u32 name length | export name | u32 count |
// count × (u32 length | query).
type MetaContextRequest struct {
	Export  string
	Queries []string
}

// AppendMetaContextRequest appends the encoding of r to b.
func AppendMetaContextRequest(b []byte, r MetaContextRequest) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Export)))
	b = append(b, r.Export...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Queries)))
	for _, q := range r.Queries {
		b = binary.BigEndian.AppendUint32(b, uint32(len(q)))
		b = append(b, q...)
	}
	return b
}

// ParseMetaContextRequest decodes LIST/SET_META_CONTEXT data. Strings are
// bounded by MaxStringLen (ErrTooLong), the query count by MaxMetaQueries
// (ErrTooMany); b must hold exactly the encoded request (ErrInvalid).
func ParseMetaContextRequest(b []byte) (MetaContextRequest, error) {
	var r MetaContextRequest
	name, off, err := parseString32(b, 0)
	if err != nil {
		return MetaContextRequest{}, fmt.Errorf("parse meta context request: export name: %w", err)
	}
	r.Export = name
	if len(b)-off < 4 {
		return MetaContextRequest{}, fmt.Errorf("parse meta context request: no query count: %w", ErrInvalid)
	}
	n := uint64(binary.BigEndian.Uint32(b[off:]))
	off += 4
	if n > MaxMetaQueries {
		return MetaContextRequest{}, fmt.Errorf("parse meta context request: %d queries > %d: %w", n, MaxMetaQueries, ErrTooMany)
	}
	if n*4 > uint64(len(b)-off) {
		return MetaContextRequest{}, fmt.Errorf("parse meta context request: %d queries exceed data length: %w", n, ErrInvalid)
	}
	if n > 0 {
		r.Queries = make([]string, 0, n)
	}
	for i := uint64(0); i < n; i++ {
		var q string
		q, off, err = parseString32(b, off)
		if err != nil {
			return MetaContextRequest{}, fmt.Errorf("parse meta context request: query %d: %w", i, err)
		}
		r.Queries = append(r.Queries, q)
	}
	if off != len(b) {
		return MetaContextRequest{}, fmt.Errorf("parse meta context request: %d trailing bytes: %w", len(b)-off, ErrInvalid)
	}
	return r, nil
}

// parseString32 decodes u32 length | string at b[off:], bounded by
// MaxStringLen, and returns the offset after it.
func parseString32(b []byte, off int) (string, int, error) {
	if len(b)-off < 4 {
		return "", 0, fmt.Errorf("%d bytes left, need 4 for a length: %w", len(b)-off, ErrInvalid)
	}
	n := uint64(binary.BigEndian.Uint32(b[off:]))
	off += 4
	if n > MaxStringLen {
		return "", 0, fmt.Errorf("string length %d > %d: %w", n, MaxStringLen, ErrTooLong)
	}
	if n > uint64(len(b)-off) {
		return "", 0, fmt.Errorf("string length %d exceeds the %d bytes left: %w", n, len(b)-off, ErrInvalid)
	}
	end := off + int(n)
	return string(b[off:end]), end, nil
}

// MetaContext is a metadata context and its ID, as carried by
// NBD_REP_META_CONTEXT (u32 id | name).
type MetaContext struct {
	ID   uint32
	Name string
}

// AppendMetaContextReply appends NBD_REP_META_CONTEXT data to b.
func AppendMetaContextReply(b []byte, m MetaContext) []byte {
	b = binary.BigEndian.AppendUint32(b, m.ID)
	return append(b, m.Name...)
}

// ParseMetaContextReply decodes NBD_REP_META_CONTEXT data.
func ParseMetaContextReply(b []byte) (MetaContext, error) {
	if len(b) < 4 {
		return MetaContext{}, fmt.Errorf("parse meta context reply: %d bytes, need at least 4: %w", len(b), ErrInvalid)
	}
	if len(b)-4 > MaxStringLen {
		return MetaContext{}, fmt.Errorf("parse meta context reply: name length %d > %d: %w", len(b)-4, MaxStringLen, ErrTooLong)
	}
	return MetaContext{ID: binary.BigEndian.Uint32(b[0:4]), Name: string(b[4:])}, nil
}
