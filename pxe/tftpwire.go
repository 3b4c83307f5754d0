package pxe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// TFTP wire format (RFC 1350, options RFC 2347-2349). Every packet
// starts with a 2-byte big-endian opcode.
const (
	opRRQ   = 1 // read request: filename\0 mode\0 (option\0 value\0)*
	opWRQ   = 2 // write request (refused: the service is read-only)
	opDATA  = 3 // block number, up to blksize bytes
	opACK   = 4 // block number
	opERROR = 5 // error code, message\0
	opOACK  = 6 // (option\0 value\0)*

	tftpErrUndefined = 0
	tftpErrNotFound  = 1
	tftpErrAccess    = 2
	tftpErrIllegal   = 4
	tftpErrUnknownID = 5

	tftpDefaultBlock = 512
	// tftpMaxBlock keeps a DATA packet inside an Ethernet frame (1500
	// less IP, UDP and TFTP headers), what PXE ROMs ask for anyway.
	tftpMaxBlock = 1468
)

// rrq is a parsed read request.
type rrq struct {
	name, mode string
	blksize    int  // 0: not asked
	tsize      bool // the client asked for the file's size
}

// parseRRQ decodes a read request: opcode 1, then NUL-terminated
// strings. Options other than blksize and tsize are ignored (the
// server's timing is its own: a client's "timeout" cannot stretch a
// stall); a bad blksize is an error.
func parseRRQ(b []byte) (rrq, error) {
	if len(b) < 2 || binary.BigEndian.Uint16(b) != opRRQ {
		return rrq{}, errors.New("not a read request")
	}
	fields := bytes.Split(b[2:], []byte{0})
	// A well-formed request ends with NUL: the last field is empty.
	if len(fields) < 3 || len(fields[len(fields)-1]) != 0 {
		return rrq{}, errors.New("read request without NUL-terminated file name and mode")
	}
	fields = fields[:len(fields)-1]
	r := rrq{name: string(fields[0]), mode: strings.ToLower(string(fields[1]))}
	for i := 2; i+1 < len(fields); i += 2 {
		k, v := strings.ToLower(string(fields[i])), string(fields[i+1])
		switch k {
		case "blksize":
			n, err := strconv.Atoi(v)
			if err != nil || n < 8 || n > 65464 {
				return rrq{}, fmt.Errorf("blksize %q out of range", v)
			}
			r.blksize = n
		case "tsize":
			r.tsize = true
		}
	}
	return r, nil
}

// bytes encodes r as a read request (used by tests and the fuzz target's
// round trip).
func (r rrq) bytes() []byte {
	b := binary.BigEndian.AppendUint16(nil, opRRQ)
	b = append(append(b, r.name...), 0)
	b = append(append(b, r.mode...), 0)
	if r.blksize != 0 {
		b = append(append(b, "blksize\x00"...), strconv.Itoa(r.blksize)+"\x00"...)
	}
	if r.tsize {
		b = append(b, "tsize\x000\x00"...)
	}
	return b
}

// oackPacket acknowledges options: blksize (0: not asked) and tsize (-1:
// not asked).
func oackPacket(blksize int, tsize int64) []byte {
	b := binary.BigEndian.AppendUint16(nil, opOACK)
	if blksize != 0 {
		b = append(append(b, "blksize\x00"...), strconv.Itoa(blksize)+"\x00"...)
	}
	if tsize >= 0 {
		b = append(append(b, "tsize\x00"...), strconv.FormatInt(tsize, 10)+"\x00"...)
	}
	return b
}

// dataPacket is block n with payload p, in buf (reused).
func dataPacket(buf []byte, n uint16, p []byte) []byte {
	buf = binary.BigEndian.AppendUint16(buf[:0], opDATA)
	buf = binary.BigEndian.AppendUint16(buf, n)
	return append(buf, p...)
}

// errorPacket is an ERROR with code and message.
func errorPacket(code uint16, msg string) []byte {
	b := binary.BigEndian.AppendUint16(nil, opERROR)
	b = binary.BigEndian.AppendUint16(b, code)
	return append(append(b, msg...), 0)
}

// parseReply decodes what a client sends during a transfer: an ACK of
// block n, or an ERROR (isErr, with its message).
func parseReply(b []byte) (n uint16, isErr bool, msg string, ok bool) {
	if len(b) < 4 {
		return 0, false, "", false
	}
	switch binary.BigEndian.Uint16(b) {
	case opACK:
		return binary.BigEndian.Uint16(b[2:]), false, "", true
	case opERROR:
		m, _, _ := bytes.Cut(b[4:], []byte{0})
		return 0, true, string(m), true
	}
	return 0, false, "", false
}
