package protocol

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Fuzz targets. Their seed corpora in testdata/fuzz/<FuzzName>/ are written
// by TestWriteFuzzSeeds (NBDBOOT_WRITE_FUZZ_SEEDS=1 go test -run
// TestWriteFuzzSeeds ./protocol/) from the same seeds f.Add uses.

// streamConn is a connection whose peer's bytes are fixed: reads come from
// r, writes are counted and dropped.
type streamConn struct {
	net.Conn // nil: only Read, Write and Close are used
	r        io.Reader
	written  int
}

func (c *streamConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *streamConn) Write(p []byte) (int, error) { c.written += len(p); return len(p), nil }
func (c *streamConn) Close() error                { return nil }

// allocBound fails t if running fn allocates more than limit bytes.
func allocBound(t *testing.T, limit uint64, fn func()) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > limit {
		t.Fatalf("allocated %d bytes, bound %d", got, limit)
	}
}

// clientStream builds a client's side of a handshake: flags then options.
func clientStream(flags uint32, opts ...[]byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, flags)
	for _, o := range opts {
		b = append(b, o...)
	}
	return b
}

func serverHandshakeSeeds() [][]byte {
	fixed := ClientFlagFixedNewstyle | ClientFlagNoZeroes
	long := AppendOptionHeader(nil, OptionHeader{Option: OptGo, Length: 0xffffffff})
	return [][]byte{
		// opts byte: bit 0 TLSRequired, bit 1 StartTLS configured.
		append([]byte{0}, clientStream(fixed, AppendOption(nil, OptGo, infoReq("root", InfoBlockSize)))...),
		append([]byte{0}, clientStream(fixed,
			AppendOption(nil, OptStructuredReply, nil),
			AppendOption(nil, OptListMetaContext, metaReq("root", "base:")),
			AppendOption(nil, OptSetMetaContext, metaReq("root", MetaContextBaseAllocation)),
			AppendOption(nil, OptInfo, infoReq("root", InfoName, InfoDescription)),
			AppendOption(nil, OptGo, infoReq("root")))...),
		append([]byte{0}, clientStream(fixed, AppendOption(nil, OptList, nil), AppendOption(nil, OptAbort, nil))...),
		append([]byte{0}, clientStream(0, AppendOption(nil, OptExportName, []byte("root")))...),
		append([]byte{0}, clientStream(fixed, AppendOption(nil, 42, []byte("junk")), AppendOption(nil, OptExportName, []byte("nope")))...),
		append([]byte{3}, clientStream(fixed, AppendOption(nil, OptList, nil), AppendOption(nil, OptStartTLS, nil), AppendOption(nil, OptGo, infoReq("")))...),
		append([]byte{0}, clientStream(fixed, long)...),
		append([]byte{0}, clientStream(1<<7)...),
	}
}

func FuzzServerHandshake(f *testing.F) {
	for _, s := range serverHandshakeSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		var opts ServerOptions
		opts.TLSRequired = data[0]&1 != 0
		if data[0]&2 != 0 {
			opts.StartTLS = func(rw io.ReadWriter) (io.ReadWriter, error) { return rw, nil }
		}
		conn := &streamConn{r: bytes.NewReader(data[1:])}
		allocBound(t, 1<<20+256*uint64(len(data)), func() {
			sess, err := ServerHandshake(conn, testExports, opts)
			if err == nil && sess == nil {
				t.Fatalf("no session and no error")
			}
			if err == nil && sess.Export.Flags&FlagHasFlags == 0 {
				t.Fatalf("session flags %#x lack HAS_FLAGS", sess.Export.Flags)
			}
		})
	})
}

func clientHandshakeSeeds() [][]byte {
	greet := func(flags uint16) []byte {
		b := binary.BigEndian.AppendUint64(nil, NBDMagic)
		b = binary.BigEndian.AppendUint64(b, IHaveOpt)
		return binary.BigEndian.AppendUint16(b, flags)
	}
	info := func(in Info) []byte { return AppendOptionReply(nil, OptGo, RepInfo, AppendInfo(nil, in)) }
	return [][]byte{
		cat(greet(3),
			AppendOptionReply(nil, OptStructuredReply, RepAck, nil),
			AppendOptionReply(nil, OptSetMetaContext, RepMetaContext, AppendMetaContextReply(nil, MetaContext{1, MetaContextBaseAllocation})),
			AppendOptionReply(nil, OptSetMetaContext, RepAck, nil),
			info(Info{Type: InfoExport, Size: 1 << 20, Flags: 1}),
			info(Info{Type: InfoBlockSize, MinBlock: 1, PrefBlock: 4096, MaxBlock: 1 << 25}),
			AppendOptionReply(nil, OptGo, RepAck, nil)),
		cat(greet(1),
			AppendOptionReply(nil, OptStructuredReply, RepErrUnsup, nil),
			AppendOptionReply(nil, OptGo, RepErrUnsup, nil),
			make([]byte, 10+124)),
		cat(greet(3), AppendOptionReply(nil, OptStructuredReply, RepAck, nil), AppendOptionReplyHeader(nil, OptionReplyHeader{OptSetMetaContext, RepMetaContext, 0xffffffff})),
		cat(greet(0), make([]byte, 134)),
	}
}

func FuzzClientHandshake(f *testing.F) {
	for _, s := range clientHandshakeSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		conn := &streamConn{r: bytes.NewReader(data)}
		allocBound(t, 1<<20+256*uint64(len(data)), func() {
			n, err := ClientHandshake(conn, ClientOptions{Export: "root", Structured: true, MetaContexts: []string{MetaContextBaseAllocation}})
			if err == nil && len(n.MetaContexts) > MaxMetaQueries {
				t.Fatalf("%d meta contexts", len(n.MetaContexts))
			}
		})
	})
}

func FuzzParseRequest(f *testing.F) {
	f.Add(AppendRequest(nil, Request{Flags: CmdFlagFUA, Type: CmdWrite, Cookie: 1, Offset: 4096, Length: 512}))
	f.Add(AppendRequest(nil, Request{Type: CmdDisc}))
	f.Add([]byte{0x12, 0x56, 0x09, 0x53})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRequest(data)
		if err != nil {
			return
		}
		if enc := AppendRequest(nil, r); !bytes.Equal(enc, data[:RequestHeaderSize]) {
			t.Fatalf("round trip\n% x\nwant\n% x", enc, data[:RequestHeaderSize])
		}
		r2, err := ReadRequest(bytes.NewReader(data), make([]byte, RequestHeaderSize))
		if err != nil || r2 != r {
			t.Fatalf("ReadRequest = %+v, %v; ParseRequest = %+v", r2, err, r)
		}
	})
}

func FuzzParseInfoRequest(f *testing.F) {
	f.Add(infoReq("root", InfoBlockSize, InfoName, InfoDescription))
	f.Add(infoReq(""))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseInfoRequest(data)
		if err != nil {
			return
		}
		if len(r.Name) > MaxStringLen || len(r.Infos) > MaxInfoRequests {
			t.Fatalf("bounds: name %d infos %d", len(r.Name), len(r.Infos))
		}
		if enc := AppendInfoRequest(nil, r); !bytes.Equal(enc, data) {
			t.Fatalf("round trip\n% x\nwant\n% x", enc, data)
		}
	})
}

func FuzzParseMetaContextRequest(f *testing.F) {
	f.Add(metaReq("root", MetaContextBaseAllocation, "base:"))
	f.Add(metaReq(""))
	f.Add([]byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseMetaContextRequest(data)
		if err != nil {
			return
		}
		if len(r.Export) > MaxStringLen || len(r.Queries) > MaxMetaQueries {
			t.Fatalf("bounds: export %d queries %d", len(r.Export), len(r.Queries))
		}
		for _, q := range r.Queries {
			if len(q) > MaxStringLen {
				t.Fatalf("query of %d bytes", len(q))
			}
		}
		if enc := AppendMetaContextRequest(nil, r); !bytes.Equal(enc, data) {
			t.Fatalf("round trip\n% x\nwant\n% x", enc, data)
		}
	})
}

// FuzzParseOptionReplies feeds the data of every option reply parser.
func FuzzParseOptionReplies(f *testing.F) {
	f.Add(AppendInfo(nil, Info{Type: InfoExport, Size: 1 << 30, Flags: 1}))
	f.Add(AppendInfo(nil, Info{Type: InfoBlockSize, MinBlock: 512, PrefBlock: 4096, MaxBlock: 1 << 20}))
	f.Add(AppendInfo(nil, Info{Type: InfoName, Text: "root"}))
	f.Add(AppendServerReply(nil, "root", "desc"))
	f.Add(AppendMetaContextReply(nil, MetaContext{1, MetaContextBaseAllocation}))
	f.Add(AppendOptionReply(nil, OptGo, RepErrUnknown, []byte("no")))
	f.Fuzz(func(t *testing.T, data []byte) {
		if in, err := ParseInfo(data); err == nil && in.Type <= InfoBlockSize {
			if enc := AppendInfo(nil, in); !bytes.Equal(enc, data) {
				t.Fatalf("info round trip\n% x\nwant\n% x", enc, data)
			}
		}
		if n, d, err := ParseServerReply(data); err == nil {
			if enc := AppendServerReply(nil, n, d); !bytes.Equal(enc, data) {
				t.Fatalf("server reply round trip\n% x\nwant\n% x", enc, data)
			}
		}
		if m, err := ParseMetaContextReply(data); err == nil {
			if enc := AppendMetaContextReply(nil, m); !bytes.Equal(enc, data) {
				t.Fatalf("meta context reply round trip\n% x\nwant\n% x", enc, data)
			}
		}
		if h, err := ParseOptionReplyHeader(data); err == nil {
			if enc := AppendOptionReplyHeader(nil, h); !bytes.Equal(enc, data[:OptionReplyHeaderSize]) {
				t.Fatalf("option reply header round trip\n% x\nwant\n% x", enc, data[:OptionReplyHeaderSize])
			}
		}
		if h, err := ParseOptionHeader(data); err == nil {
			if enc := AppendOptionHeader(nil, h); !bytes.Equal(enc, data[:OptionHeaderSize]) {
				t.Fatalf("option header round trip\n% x\nwant\n% x", enc, data[:OptionHeaderSize])
			}
		}
	})
}

func FuzzReadReplyHeader(f *testing.F) {
	f.Add(AppendSimpleReply(nil, EIO, 3))
	f.Add(AppendChunk(nil, Chunk{Flags: ChunkFlagDone, Type: ChunkOffsetData, Cookie: 3, Length: 4096}))
	f.Add([]byte{0x96, 0x74, 0x46, 0x68})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ReadReplyHeader(bytes.NewReader(data), make([]byte, ChunkHeaderSize))
		if err != nil {
			return
		}
		var enc []byte
		if h.Structured {
			enc = AppendChunk(nil, h.Chunk)
		} else {
			enc = AppendSimpleReply(nil, h.Errno, h.Cookie)
		}
		if !bytes.Equal(enc, data[:len(enc)]) {
			t.Fatalf("round trip\n% x\nwant\n% x", enc, data[:len(enc)])
		}
	})
}

func FuzzChunkPayloads(f *testing.F) {
	f.Add(ChunkOffsetHole, AppendOffsetHole(nil, 512, 4096))
	f.Add(ChunkBlockStatus, AppendBlockStatus(nil, 1, []Extent{{4096, 0}, {512, 3}}))
	f.Add(ChunkError, AppendChunkError(nil, ChunkErr{Errno: EIO, Message: "bad"}))
	f.Add(ChunkErrorOffset, AppendChunkError(nil, ChunkErr{Errno: EIO, Message: "bad", Offset: 9, HasOffset: true}))
	f.Fuzz(func(t *testing.T, typ uint16, data []byte) {
		// enc is the payload encoded again, whole the complete chunk as the
		// server's encoder writes it (cookie 7, final).
		var enc, whole []byte
		switch typ {
		case ChunkOffsetHole:
			off, n, err := ParseOffsetHole(data)
			if err != nil {
				return
			}
			enc = AppendOffsetHole(nil, off, n)
			whole = AppendOffsetHoleChunk(nil, ChunkFlagDone, 7, off, n)
		case ChunkBlockStatus:
			id, ext, err := ParseBlockStatus(data, nil)
			if err != nil {
				return
			}
			if len(ext) > MaxBlockStatusExtents {
				t.Fatalf("%d extents", len(ext))
			}
			enc = AppendBlockStatus(nil, id, ext)
			whole = AppendBlockStatusChunk(nil, ChunkFlagDone, 7, id, ext)
		default:
			e, err := ParseChunkError(typ, data)
			if err != nil || (typ != ChunkError && typ != ChunkErrorOffset) {
				return
			}
			enc = AppendChunkError(nil, e)
			whole = AppendErrorChunk(nil, ChunkFlagDone, 7, e)
		}
		if !bytes.Equal(enc, data) {
			t.Fatalf("round trip of type %d\n% x\nwant\n% x", typ, enc, data)
		}
		h, err := ReadReplyHeader(bytes.NewReader(whole), nil)
		want := Chunk{Flags: ChunkFlagDone, Type: typ, Cookie: 7, Length: uint32(len(data))}
		if err != nil || h.Chunk != want || !bytes.Equal(whole[ChunkHeaderSize:], data) {
			t.Fatalf("whole chunk of type %d: header %+v, %v; payload equal %v", typ, h.Chunk, err, bytes.Equal(whole[ChunkHeaderSize:], data))
		}
	})
}

// FuzzClientReply feeds arbitrary server replies to Client.Do.
func FuzzClientReply(f *testing.F) {
	f.Add(uint16(CmdRead), true, cat(
		chunk(0, ChunkOffsetHole, 1, AppendOffsetHole(nil, 4, 4)),
		chunk(ChunkFlagDone, ChunkOffsetData, 1, offsetData(0, []byte("abcd")))))
	f.Add(uint16(CmdRead), false, cat(AppendSimpleReply(nil, 0, 1), []byte("abcdefgh")))
	f.Add(uint16(CmdBlockStatus), true, chunk(ChunkFlagDone, ChunkBlockStatus, 1, AppendBlockStatus(nil, 1, []Extent{{8, 0}})))
	f.Add(uint16(CmdFlush), true, chunk(ChunkFlagDone, ChunkError, 1, AppendChunkError(nil, ChunkErr{Errno: EIO})))
	f.Fuzz(func(t *testing.T, typ uint16, structured bool, data []byte) {
		conn := &streamConn{r: bytes.NewReader(data)}
		n := Negotiated{Structured: structured, MetaContexts: map[string]uint32{MetaContextBaseAllocation: 1}}
		c := NewClient(conn, n)
		req := Request{Type: typ, Cookie: 1, Offset: 0, Length: 8}
		allocBound(t, 1<<20+64*uint64(len(data)), func() {
			r, err := c.Do(req, nil)
			if err != nil || r == nil {
				return
			}
			if r.Errno == 0 && typ == CmdRead && len(r.Data) != 8 {
				t.Fatalf("READ of 8 returned %d bytes", len(r.Data))
			}
		})
	})
}

// TestWriteFuzzSeeds writes the seed corpora to testdata/fuzz when
// NBDBOOT_WRITE_FUZZ_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("NBDBOOT_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set NBDBOOT_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz")
	}
	write := func(target string, i int, values ...any) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.WriteString("go test fuzz v1\n")
		for _, v := range values {
			switch v := v.(type) {
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", v)
			case uint16:
				fmt.Fprintf(&b, "uint16(%d)\n", v)
			case bool:
				fmt.Fprintf(&b, "bool(%v)\n", v)
			default:
				t.Fatalf("type %T", v)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%02d", i)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range serverHandshakeSeeds() {
		write("FuzzServerHandshake", i, s)
	}
	for i, s := range clientHandshakeSeeds() {
		write("FuzzClientHandshake", i, s)
	}
	write("FuzzParseRequest", 0, AppendRequest(nil, Request{Flags: CmdFlagFUA | CmdFlagNoHole, Type: CmdWriteZeroes, Cookie: 7, Offset: 1 << 40, Length: 1 << 20}))
	write("FuzzParseInfoRequest", 0, infoReq("root", InfoBlockSize, InfoName, InfoDescription))
	write("FuzzParseMetaContextRequest", 0, metaReq("root", MetaContextBaseAllocation, "base:", "qemu:dirty-bitmap:x"))
	write("FuzzParseOptionReplies", 0, AppendInfo(nil, Info{Type: InfoDescription, Text: "the root fs"}))
	write("FuzzParseOptionReplies", 1, AppendServerReply(nil, "root", "the root fs"))
	write("FuzzReadReplyHeader", 0, AppendChunk(nil, Chunk{Type: ChunkErrorOffset, Cookie: 9, Length: 14}))
	write("FuzzChunkPayloads", 0, ChunkBlockStatus, AppendBlockStatus(nil, 1, []Extent{{1 << 20, StateHole | StateZero}}))
	write("FuzzChunkPayloads", 1, ChunkErrorOffset, AppendChunkError(nil, ChunkErr{Errno: EOVERFLOW, Message: "too big", Offset: 1 << 33, HasOffset: true}))
	write("FuzzClientReply", 0, uint16(CmdRead), true, cat(
		chunk(0, ChunkOffsetData, 1, offsetData(4, []byte("efgh"))),
		chunk(0, ChunkOffsetData, 1, offsetData(0, []byte("abcd"))),
		chunk(ChunkFlagDone, ChunkNone, 1, nil)))
}
