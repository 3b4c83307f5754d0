package nbdnl

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Netlink attribute layout (struct nlattr): a 4-byte header holding the
// length (header plus payload, without padding) and the type, both in host
// byte order, then the payload, padded to a multiple of 4 bytes.
const (
	nlaHeaderLen = 4
	nlaAlign     = 4
	nlaFNested   = 1 << 15 // NLA_F_NESTED
	nlaFByteOrd  = 1 << 14 // NLA_F_NET_BYTEORDER
	nlaTypeMask  = ^uint16(nlaFNested | nlaFByteOrd)
	nlaMaxLen    = 0xffff
)

var errAttrTooLong = errors.New("netlink attribute longer than 65535 bytes")

func nlaAlignLen(n int) int { return (n + nlaAlign - 1) &^ (nlaAlign - 1) }

// appendAttr appends one attribute of type typ carrying payload to b.
func appendAttr(b []byte, typ uint16, payload []byte) ([]byte, error) {
	n := nlaHeaderLen + len(payload)
	if n > nlaMaxLen {
		return b, fmt.Errorf("attribute type %d: %w", typ&nlaTypeMask, errAttrTooLong)
	}
	b = binary.NativeEndian.AppendUint16(b, uint16(n))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, payload...)
	for range nlaAlignLen(n) - n {
		b = append(b, 0)
	}
	return b, nil
}

func appendU32(b []byte, typ uint16, v uint32) []byte {
	b, _ = appendAttr(b, typ, binary.NativeEndian.AppendUint32(nil, v))
	return b
}

func appendU64(b []byte, typ uint16, v uint64) []byte {
	b, _ = appendAttr(b, typ, binary.NativeEndian.AppendUint64(nil, v))
	return b
}

// appendString appends a NUL-terminated string attribute (NLA_STRING, as
// libnl's nla_put_string sends it).
func appendString(b []byte, typ uint16, s string) ([]byte, error) {
	return appendAttr(b, typ, append([]byte(s), 0))
}

// appendNested appends a nested attribute (flagged NLA_F_NESTED) whose
// payload is the already-encoded attributes inner.
func appendNested(b []byte, typ uint16, inner []byte) ([]byte, error) {
	return appendAttr(b, typ|nlaFNested, inner)
}

// attr is one decoded attribute; Data aliases the input.
type attr struct {
	Type uint16 // without NLA_F_NESTED / NLA_F_NET_BYTEORDER
	Data []byte
}

// parseAttrs splits b into attributes, checking every length against the
// bytes that are there. At most max attributes are returned, bounding
// allocations for hostile input.
func parseAttrs(b []byte, max int) ([]attr, error) {
	var out []attr
	for off := 0; off < len(b); {
		if len(b)-off < nlaHeaderLen {
			return nil, fmt.Errorf("attribute at offset %d: %d bytes left, header needs %d", off, len(b)-off, nlaHeaderLen)
		}
		n := int(binary.NativeEndian.Uint16(b[off:]))
		typ := binary.NativeEndian.Uint16(b[off+2:]) & nlaTypeMask
		if n < nlaHeaderLen || n > len(b)-off {
			return nil, fmt.Errorf("attribute type %d at offset %d: length %d does not fit %d bytes", typ, off, n, len(b)-off)
		}
		if len(out) == max {
			return nil, fmt.Errorf("more than %d attributes", max)
		}
		out = append(out, attr{Type: typ, Data: b[off+nlaHeaderLen : off+n]})
		off += nlaAlignLen(n) // the last attribute's padding may be missing
	}
	return out, nil
}

func (a attr) u32() (uint32, error) {
	if len(a.Data) != 4 {
		return 0, fmt.Errorf("attribute type %d: %d bytes, want 4 for a u32", a.Type, len(a.Data))
	}
	return binary.NativeEndian.Uint32(a.Data), nil
}

func (a attr) u8() (uint8, error) {
	if len(a.Data) != 1 {
		return 0, fmt.Errorf("attribute type %d: %d bytes, want 1 for a u8", a.Type, len(a.Data))
	}
	return a.Data[0], nil
}
