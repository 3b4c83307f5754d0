package server

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"testing"

	"github.com/nbdboot/nbdboot/protocol"
)

const memSize = 1 << 20

func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
func cat(parts ...[]byte) []byte {
	return bytes.Join(parts, nil)
}

// checkGoodRead proves the connection still works: a READ of 512 bytes at
// 4096 returns the pattern.
func (c *client) checkGoodRead(structured bool) {
	c.t.Helper()
	req := protocol.Request{Type: protocol.CmdRead, Cookie: 0xc0ffee, Offset: 4096, Length: 512}
	r := c.do(req, nil)
	if r.Errno != 0 || !bytes.Equal(r.Data, pattern(4096, 512)) {
		c.t.Fatalf("good READ after the bad request: errno %d, data ok %v", r.Errno, bytes.Equal(r.Data, pattern(4096, 512)))
	}
}

func TestMalformedHandshake(t *testing.T) {
	tab, _, _ := memExports(t, memSize)
	ts := startServer(t, tab, testLimits())
	const fixed = protocol.ClientFlagFixedNewstyle | protocol.ClientFlagNoZeroes
	for _, tt := range []struct {
		name        string
		clientFlags uint32
		send        []byte
		// wantReply is the option reply expected to wantOption; 0 means
		// the server must close the connection.
		wantOption, wantReply uint32
	}{
		{name: "unknown client flag bit", clientFlags: fixed | 1<<5},
		{
			name: "option with bad magic", clientFlags: fixed,
			// "IHAVEOPX" | option GO | length 0
			send: cat([]byte("IHAVEOPX"), u32(protocol.OptGo), u32(0)),
		},
		{
			name: "option length over the cap", clientFlags: fixed,
			// IHAVEOPT | option GO | length 0xffffffff (no data follows)
			send: cat(u64(protocol.IHaveOpt), u32(protocol.OptGo), u32(0xffffffff)),
		},
		{
			name: "1997 request magic instead of an option", clientFlags: fixed,
			// u32 0x12560953 | 24 bytes of zeroes
			send: cat(u32(0x12560953), make([]byte, 24)),
		},
		{
			name: "unknown option with data", clientFlags: fixed,
			// IHAVEOPT | option 99 | length 5 | "hello"
			send:       cat(u64(protocol.IHaveOpt), u32(99), u32(5), []byte("hello")),
			wantOption: 99, wantReply: protocol.RepErrUnsup,
		},
		{
			name: "withdrawn PEEK_EXPORT", clientFlags: fixed,
			// IHAVEOPT | option 4 | length 0
			send:       cat(u64(protocol.IHaveOpt), u32(protocol.OptPeekExport), u32(0)),
			wantOption: protocol.OptPeekExport, wantReply: protocol.RepErrUnsup,
		},
		{
			name: "LIST with data", clientFlags: fixed,
			// IHAVEOPT | option LIST | length 3 | "abc"
			send:       cat(u64(protocol.IHaveOpt), u32(protocol.OptList), u32(3), []byte("abc")),
			wantOption: protocol.OptList, wantReply: protocol.RepErrInvalid,
		},
		{
			name: "STRUCTURED_REPLY with data", clientFlags: fixed,
			// IHAVEOPT | option STRUCTURED_REPLY | length 1 | 0x00
			send:       cat(u64(protocol.IHaveOpt), u32(protocol.OptStructuredReply), u32(1), []byte{0}),
			wantOption: protocol.OptStructuredReply, wantReply: protocol.RepErrInvalid,
		},
		{
			name: "STARTTLS without TLS configured", clientFlags: fixed,
			// IHAVEOPT | option STARTTLS | length 0
			send:       cat(u64(protocol.IHaveOpt), u32(protocol.OptStartTLS), u32(0)),
			wantOption: protocol.OptStartTLS, wantReply: protocol.RepErrUnsup,
		},
		{
			name: "GO for an unknown export", clientFlags: fixed,
			// IHAVEOPT | option GO | length 9 | u32 name length 3 | "xyz" | u16 0 info requests
			send:       cat(u64(protocol.IHaveOpt), u32(protocol.OptGo), u32(9), u32(3), []byte("xyz"), u16(0)),
			wantOption: protocol.OptGo, wantReply: protocol.RepErrUnknown,
		},
		{
			name: "GO with name length past the data", clientFlags: fixed,
			// IHAVEOPT | option GO | length 6 | u32 name length 100 | "me" (truncated)
			send:       cat(u64(protocol.IHaveOpt), u32(protocol.OptGo), u32(6), u32(100), []byte("me")),
			wantOption: protocol.OptGo, wantReply: protocol.RepErrInvalid,
		},
		{
			name: "INFO with more info requests than data", clientFlags: fixed,
			// IHAVEOPT | option INFO | length 9 | u32 name length 3 | "mem" | u16 5 requests (none follow)
			send:       cat(u64(protocol.IHaveOpt), u32(protocol.OptInfo), u32(9), u32(3), []byte("mem"), u16(5)),
			wantOption: protocol.OptInfo, wantReply: protocol.RepErrInvalid,
		},
		{
			name: "SET_META_CONTEXT before STRUCTURED_REPLY", clientFlags: fixed,
			// IHAVEOPT | option SET_META_CONTEXT | length 30 | u32 3 | "mem" | u32 1 query | u32 15 | "base:allocation"
			send: cat(u64(protocol.IHaveOpt), u32(protocol.OptSetMetaContext), u32(30),
				u32(3), []byte("mem"), u32(1), u32(15), []byte("base:allocation")),
			wantOption: protocol.OptSetMetaContext, wantReply: protocol.RepErrInvalid,
		},
		{
			name: "EXPORT_NAME for an unknown export", clientFlags: fixed,
			// IHAVEOPT | option EXPORT_NAME | length 4 | "nope": no error reply exists, so close
			send: cat(u64(protocol.IHaveOpt), u32(protocol.OptExportName), u32(4), []byte("nope")),
		},
		{
			name: "truncated option header then EOF", clientFlags: fixed,
			// IHAVEOPT | 2 bytes of the option field
			send: cat(u64(protocol.IHaveOpt), []byte{0, 0}),
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, ts.addr)
			greet := make([]byte, protocol.ServerGreetingSize)
			if _, err := io.ReadFull(c.br, greet); err != nil {
				t.Fatal(err)
			}
			// NBDMAGIC | IHAVEOPT | u16 FIXED_NEWSTYLE|NO_ZEROES
			want := cat(u64(protocol.NBDMagic), u64(protocol.IHaveOpt), u16(protocol.FlagFixedNewstyle|protocol.FlagNoZeroes))
			if !bytes.Equal(greet, want) {
				t.Fatalf("greeting % x, want % x", greet, want)
			}
			c.write(cat(u32(tt.clientFlags), tt.send))
			if tt.name == "truncated option header then EOF" {
				c.nc.(interface{ CloseWrite() error }).CloseWrite()
			}
			if tt.wantReply == 0 {
				c.expectClosed()
				return
			}
			opt, typ, _ := c.optionReply(t)
			if opt != tt.wantOption || typ != tt.wantReply {
				t.Fatalf("reply to option %d: %s, want %s to option %d", opt, protocol.ReplyName(typ), protocol.ReplyName(tt.wantReply), tt.wantOption)
			}
			c.goExport(t, "mem")
			c.checkGoodRead(false)
			c.disconnect()
		})
	}
}

func TestHandshakeAbort(t *testing.T) {
	tab, _, _ := memExports(t, memSize)
	ts := startServer(t, tab, testLimits())
	c := dialRaw(t, ts.addr)
	io.ReadFull(c.br, make([]byte, protocol.ServerGreetingSize))
	// client flags FIXED_NEWSTYLE | IHAVEOPT | option ABORT | length 0
	c.write(cat(u32(protocol.ClientFlagFixedNewstyle), u64(protocol.IHaveOpt), u32(protocol.OptAbort), u32(0)))
	if opt, typ, _ := c.optionReply(t); opt != protocol.OptAbort || typ != protocol.RepAck {
		t.Errorf("ABORT answered %s", protocol.ReplyName(typ))
	}
	c.expectClosed()
}

// optionReply reads one option reply.
func (c *client) optionReply(t *testing.T) (option, typ uint32, data []byte) {
	t.Helper()
	h := make([]byte, protocol.OptionReplyHeaderSize)
	if _, err := io.ReadFull(c.br, h); err != nil {
		t.Fatalf("read option reply: %v", err)
	}
	rh, err := protocol.ParseOptionReplyHeader(h)
	if err != nil {
		t.Fatal(err)
	}
	if rh.Length > 1<<16 {
		t.Fatalf("option reply length %d", rh.Length)
	}
	data = make([]byte, rh.Length)
	if _, err := io.ReadFull(c.br, data); err != nil {
		t.Fatal(err)
	}
	return rh.Option, rh.Type, data
}

// goExport finishes a handshake with NBD_OPT_GO for name.
func (c *client) goExport(t *testing.T, name string) {
	t.Helper()
	// IHAVEOPT | option GO | length | u32 name length | name | u16 0 info requests
	c.write(cat(u64(protocol.IHaveOpt), u32(protocol.OptGo), u32(uint32(6+len(name))), u32(uint32(len(name))), []byte(name), u16(0)))
	for {
		opt, typ, _ := c.optionReply(t)
		if opt != protocol.OptGo {
			t.Fatalf("reply to option %d during GO", opt)
		}
		if typ == protocol.RepAck {
			return
		}
		if typ != protocol.RepInfo {
			t.Fatalf("GO %q answered %s", name, protocol.ReplyName(typ))
		}
	}
}

func TestMalformedRequests(t *testing.T) {
	tab, _, _ := memExports(t, memSize)
	ts := startServer(t, tab, testLimits())
	write := func(off uint64, n int) protocol.Request {
		return protocol.Request{Type: protocol.CmdWrite, Cookie: 7, Offset: off, Length: uint32(n)}
	}
	for _, tt := range []struct {
		name       string
		export     string
		structured bool
		req        protocol.Request
		payload    []byte
		// raw, if set, is sent instead of req and payload.
		raw       []byte
		wantErrno uint32
		wantClose bool
	}{
		{name: "unknown command 9", req: protocol.Request{Type: 9, Cookie: 1}, wantErrno: protocol.EINVAL},
		{name: "RESIZE not offered", req: protocol.Request{Type: protocol.CmdResize, Cookie: 1, Offset: 2 * memSize}, wantErrno: protocol.EINVAL},
		{name: "READ with unknown flag bit 7", req: protocol.Request{Type: protocol.CmdRead, Flags: 1 << 7, Cookie: 2, Length: 512}, wantErrno: protocol.EINVAL},
		{name: "READ with NO_HOLE", req: protocol.Request{Type: protocol.CmdRead, Flags: protocol.CmdFlagNoHole, Cookie: 2, Length: 512}, wantErrno: protocol.EINVAL},
		{name: "READ with DF, no structured replies", req: protocol.Request{Type: protocol.CmdRead, Flags: protocol.CmdFlagDF, Cookie: 2, Length: 512}, wantErrno: protocol.EINVAL},
		{name: "READ past the end", req: protocol.Request{Type: protocol.CmdRead, Cookie: 3, Offset: memSize - 256, Length: 512}, wantErrno: protocol.EINVAL},
		{name: "READ offset overflowing", req: protocol.Request{Type: protocol.CmdRead, Cookie: 3, Offset: ^uint64(0) - 100, Length: 512}, wantErrno: protocol.EINVAL},
		{name: "READ over 32 MiB", req: protocol.Request{Type: protocol.CmdRead, Cookie: 4, Length: 32<<20 + 1}, wantErrno: protocol.EINVAL},
		{name: "READ over 32 MiB, structured", structured: true, req: protocol.Request{Type: protocol.CmdRead, Cookie: 4, Length: 64 << 20}, wantErrno: protocol.EINVAL},
		{name: "READ past the end, structured", structured: true, req: protocol.Request{Type: protocol.CmdRead, Cookie: 4, Offset: memSize, Length: 1}, wantErrno: protocol.EINVAL},
		{name: "READ with REQ_ONE, structured", structured: true, req: protocol.Request{Type: protocol.CmdRead, Flags: protocol.CmdFlagReqOne, Cookie: 4, Length: 1}, wantErrno: protocol.EINVAL},
		{name: "WRITE past the end", req: write(memSize-100, 512), payload: make([]byte, 512), wantErrno: protocol.ENOSPC},
		{name: "WRITE offset overflowing", req: write(^uint64(0), 512), payload: make([]byte, 512), wantErrno: protocol.ENOSPC},
		{name: "WRITE to read-only export", export: "ro", req: write(0, 4096), payload: make([]byte, 4096), wantErrno: protocol.EPERM},
		{name: "WRITE with DF flag", req: protocol.Request{Type: protocol.CmdWrite, Flags: protocol.CmdFlagDF, Cookie: 5, Length: 100}, payload: make([]byte, 100), wantErrno: protocol.EINVAL},
		{name: "WRITE over 32 MiB, payload discarded", req: write(0, 32<<20+4096), payload: make([]byte, 32<<20+4096), wantErrno: protocol.EINVAL},
		{name: "TRIM past the end", req: protocol.Request{Type: protocol.CmdTrim, Cookie: 6, Offset: 4096, Length: memSize}, wantErrno: protocol.EINVAL},
		{name: "TRIM on read-only export", export: "ro", req: protocol.Request{Type: protocol.CmdTrim, Cookie: 6, Length: 4096}, wantErrno: protocol.EPERM},
		{name: "TRIM with NO_HOLE", req: protocol.Request{Type: protocol.CmdTrim, Flags: protocol.CmdFlagNoHole, Cookie: 6, Length: 4096}, wantErrno: protocol.EINVAL},
		{name: "WRITE_ZEROES past the end", req: protocol.Request{Type: protocol.CmdWriteZeroes, Cookie: 8, Offset: memSize, Length: 1}, wantErrno: protocol.ENOSPC},
		{name: "WRITE_ZEROES on read-only export", export: "ro", req: protocol.Request{Type: protocol.CmdWriteZeroes, Cookie: 8, Length: 4096}, wantErrno: protocol.EPERM},
		{name: "WRITE_ZEROES with REQ_ONE", req: protocol.Request{Type: protocol.CmdWriteZeroes, Flags: protocol.CmdFlagReqOne, Cookie: 8, Length: 4096}, wantErrno: protocol.EINVAL},
		{name: "WRITE_ZEROES FAST_ZERO that cannot be fast", req: protocol.Request{Type: protocol.CmdWriteZeroes, Flags: protocol.CmdFlagFastZero, Cookie: 8, Offset: 8192, Length: 4096}, wantErrno: protocol.ENOTSUP},
		{name: "CACHE past the end", req: protocol.Request{Type: protocol.CmdCache, Cookie: 9, Offset: memSize, Length: 4096}, wantErrno: protocol.EINVAL},
		{name: "BLOCK_STATUS without meta context", req: protocol.Request{Type: protocol.CmdBlockStatus, Cookie: 10, Length: 4096}, wantErrno: protocol.EINVAL},
		{name: "BLOCK_STATUS past the end", structured: true, req: protocol.Request{Type: protocol.CmdBlockStatus, Cookie: 10, Offset: memSize - 1, Length: 2}, wantErrno: protocol.EINVAL},
		{name: "BLOCK_STATUS of length 0", structured: true, req: protocol.Request{Type: protocol.CmdBlockStatus, Cookie: 10, Length: 0}, wantErrno: protocol.EINVAL},
		{name: "BLOCK_STATUS with FAST_ZERO", structured: true, req: protocol.Request{Type: protocol.CmdBlockStatus, Flags: protocol.CmdFlagFastZero, Cookie: 10, Length: 512}, wantErrno: protocol.EINVAL},
		{name: "FLUSH with an offset", req: protocol.Request{Type: protocol.CmdFlush, Cookie: 11, Offset: 512}, wantErrno: protocol.EINVAL},
		{name: "FLUSH with a length", req: protocol.Request{Type: protocol.CmdFlush, Cookie: 11, Length: 512}, wantErrno: protocol.EINVAL},
		{name: "zero-length READ", req: protocol.Request{Type: protocol.CmdRead, Cookie: 12, Offset: 100}},
		{name: "zero-length READ at the end, structured", structured: true, req: protocol.Request{Type: protocol.CmdRead, Cookie: 12, Offset: memSize}},
		{name: "zero-length WRITE", req: write(memSize, 0)},
		{name: "zero-length TRIM", req: protocol.Request{Type: protocol.CmdTrim, Cookie: 13, Offset: 4096}},
		{name: "FUA on READ is accepted", req: protocol.Request{Type: protocol.CmdRead, Flags: protocol.CmdFlagFUA, Cookie: 14, Length: 16}},
		{
			name: "bad request magic",
			// u32 0x25609514 | flags 0 | type READ | cookie 1 | offset 0 | length 512
			raw:       cat(u32(0x25609514), u16(0), u16(protocol.CmdRead), u64(1), u64(0), u32(512)),
			wantClose: true,
		},
		{
			name: "1997 request magic",
			// u32 0x12560953 | u32 type READ | 8-byte handle | u32 offset 0 | u32 length 512
			raw:       cat(u32(0x12560953), u32(0), u64(1), u32(0), u32(512), u32(0)),
			wantClose: true,
		},
		{
			name: "header cut short by EOF",
			// u32 request magic | flags 0 | type READ | 4 of the 8 cookie bytes
			raw:       cat(u32(protocol.RequestMagic), u16(0), u16(protocol.CmdRead), u32(1)),
			wantClose: true,
		},
		{
			name: "WRITE payload cut short by EOF",
			// request magic | flags 0 | type WRITE | cookie 1 | offset 0 | length 4096 | 100 bytes
			raw:       cat(u32(protocol.RequestMagic), u16(0), u16(protocol.CmdWrite), u64(1), u64(0), u32(4096), make([]byte, 100)),
			wantClose: true,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			export := tt.export
			if export == "" {
				export = "mem"
			}
			c := dial(t, ts.addr, export, tt.structured)
			if tt.raw != nil {
				c.write(tt.raw)
				if strings.Contains(tt.name, "EOF") {
					c.nc.(interface{ CloseWrite() error }).CloseWrite()
				}
			} else {
				c.send(tt.req, tt.payload)
			}
			if tt.wantClose {
				c.expectClosed()
				return
			}
			r, err := c.reply(tt.req)
			if err != nil {
				t.Fatalf("reply: %v", err)
			}
			if r.Cookie != tt.req.Cookie || r.Errno != tt.wantErrno {
				t.Fatalf("reply cookie %d errno %d, want cookie %d errno %d", r.Cookie, r.Errno, tt.req.Cookie, tt.wantErrno)
			}
			if tt.structured && tt.req.Type == protocol.CmdRead {
				for _, ch := range r.Chunks {
					if tt.wantErrno != 0 && (ch.Type == protocol.ChunkOffsetData || ch.Type == protocol.ChunkOffsetHole) {
						t.Errorf("content chunk in a failed READ")
					}
				}
			}
			if tt.req.Type == protocol.CmdRead && tt.wantErrno == 0 && !bytes.Equal(r.Data, pattern(int64(tt.req.Offset), int(tt.req.Length))) {
				t.Errorf("READ data wrong")
			}
			c.checkGoodRead(tt.structured)
			c.disconnect()
		})
	}
}
