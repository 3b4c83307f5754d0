package pxe

import (
	"bytes"
	"testing"
)

// TestParseRRQ: read requests byte by byte: name, mode and the options
// the server honours; the others ignored; malformed ones refused.
func TestParseRRQ(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		want rrq
		bad  bool
	}{
		{"plain", "\x00\x01" + // opcode RRQ
			"m/undionly.kpxe\x00" + // file name
			"octet\x00", // mode
			rrq{name: "m/undionly.kpxe", mode: "octet"}, false},
		{"EDK2's options", "\x00\x01" + "m/snponly.efi\x00" + "OCTET\x00" +
			"blksize\x001468\x00" + // RFC 2348
			"tsize\x000\x00" + // RFC 2349: asks the size
			"windowsize\x004\x00", // RFC 7440: ignored
			rrq{name: "m/snponly.efi", mode: "octet", blksize: 1468, tsize: true}, false},
		{"timeout ignored", "\x00\x01" + "f\x00" + "octet\x00" + "timeout\x00255\x00", rrq{name: "f", mode: "octet"}, false},
		{"blksize too small", "\x00\x01" + "f\x00" + "octet\x00" + "blksize\x007\x00", rrq{}, true},
		{"blksize not a number", "\x00\x01" + "f\x00" + "octet\x00" + "blksize\x00big\x00", rrq{}, true},
		{"no NUL after the mode", "\x00\x01" + "f\x00" + "octet", rrq{}, true},
		{"no mode", "\x00\x01" + "f\x00", rrq{}, true},
		{"a write request", "\x00\x02" + "f\x00" + "octet\x00", rrq{}, true},
		{"one byte", "\x00", rrq{}, true},
	} {
		got, err := parseRRQ([]byte(tt.in))
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("%s: %+v, %v", tt.name, got, err)
		}
	}
}

// TestTFTPPackets: the packets the server sends, byte by byte.
func TestTFTPPackets(t *testing.T) {
	for _, tt := range []struct {
		name      string
		got, want []byte
	}{
		{"OACK", oackPacket(1468, 70416), []byte("\x00\x06" + // opcode OACK
			"blksize\x001468\x00" +
			"tsize\x0070416\x00")},
		{"OACK, size only", oackPacket(0, 13), []byte("\x00\x06" + "tsize\x0013\x00")},
		{"DATA", dataPacket(nil, 0x0102, []byte("ab")), []byte("\x00\x03" + // opcode DATA
			"\x01\x02" + // block 258
			"ab")},
		{"ERROR", errorPacket(tftpErrAccess, "no"), []byte("\x00\x05" + // opcode ERROR
			"\x00\x02" + // access violation
			"no\x00")},
	} {
		if !bytes.Equal(tt.got, tt.want) {
			t.Errorf("%s: % x, want % x", tt.name, tt.got, tt.want)
		}
	}
	for _, tt := range []struct {
		in    string
		n     uint16
		isErr bool
		ok    bool
	}{
		{"\x00\x04\x00\x07", 7, false, true},       // ACK block 7
		{"\x00\x05\x00\x00bye\x00", 0, true, true}, // ERROR
		{"\x00\x04\x00", 0, false, false},          // short
		{"\x00\x03\x00\x01data", 0, false, false},  // DATA: not a client's reply
	} {
		n, isErr, _, ok := parseReply([]byte(tt.in))
		if n != tt.n || isErr != tt.isErr || ok != tt.ok {
			t.Errorf("parseReply(% x) = %d %v %v", tt.in, n, isErr, ok)
		}
	}
}
