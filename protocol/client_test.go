package protocol

import (
	"bytes"
	"errors"
	"io"
	"net"
	"reflect"
	"testing"
)

// oneReply serves a single request on s with canned reply bytes and
// reports the request it read.
func oneReply(t *testing.T, s net.Conn, reply []byte) <-chan Request {
	ch := make(chan Request, 1)
	go func() {
		buf := make([]byte, RequestHeaderSize)
		req, err := ReadRequest(s, buf)
		if err != nil {
			close(ch)
			return
		}
		if req.Type == CmdWrite {
			io.CopyN(io.Discard, s, int64(req.Length))
		}
		s.Write(reply)
		ch <- req
	}()
	return ch
}

func chunk(flags, typ uint16, cookie uint64, payload []byte) []byte {
	b := AppendChunk(nil, Chunk{Flags: flags, Type: typ, Cookie: cookie, Length: uint32(len(payload))})
	return append(b, payload...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestClientDo(t *testing.T) {
	const ck = 7
	done := ChunkFlagDone
	read := Request{Type: CmdRead, Cookie: ck, Offset: 100, Length: 8}
	bs := Request{Type: CmdBlockStatus, Cookie: ck, Offset: 0, Length: 4096}
	tests := []struct {
		name       string
		structured bool
		req        Request
		reply      []byte
		want       *Reply
		wantErr    error
	}{{
		name:  "simple READ",
		req:   read,
		reply: cat(AppendSimpleReply(nil, 0, ck), []byte("abcdefgh")),
		want:  &Reply{Data: []byte("abcdefgh")},
	}, {
		name:  "simple READ error has no data",
		req:   read,
		reply: AppendSimpleReply(nil, EINVAL, ck),
		want:  &Reply{Errno: Errno(EINVAL)},
	}, {
		name:    "wrong cookie",
		req:     read,
		reply:   AppendSimpleReply(nil, EINVAL, ck+1),
		wantErr: ErrProtocol,
	}, {
		name:    "bad magic",
		req:     read,
		reply:   make([]byte, 20),
		wantErr: ErrBadMagic,
	}, {
		name:       "structured READ assembled out of order with a hole",
		structured: true,
		req:        read,
		reply: cat(
			chunk(0, ChunkOffsetHole, ck, AppendOffsetHole(nil, 104, 4)),
			chunk(0, ChunkOffsetData, ck, offsetData(100, []byte("abcd"))),
			chunk(done, ChunkNone, ck, nil),
		),
		want: &Reply{Data: []byte("abcd\x00\x00\x00\x00"), Chunks: []Chunk{
			{Type: ChunkOffsetHole, Cookie: ck, Length: 12},
			{Type: ChunkOffsetData, Cookie: ck, Length: 12},
			{Flags: done, Type: ChunkNone, Cookie: ck},
		}},
	}, {
		name:       "structured READ with a gap",
		structured: true,
		req:        read,
		reply:      chunk(done, ChunkOffsetData, ck, offsetData(100, []byte("abcd"))),
		wantErr:    ErrProtocol,
	}, {
		name:       "structured READ overlapping chunks",
		structured: true,
		req:        read,
		reply: cat(
			chunk(0, ChunkOffsetData, ck, offsetData(100, []byte("abcdef"))),
			chunk(done, ChunkOffsetData, ck, offsetData(104, []byte("efgh"))),
		),
		wantErr: ErrProtocol,
	}, {
		name:       "structured READ data outside the request",
		structured: true,
		req:        read,
		reply:      chunk(done, ChunkOffsetData, ck, offsetData(104, []byte("efghijkl"))),
		wantErr:    ErrProtocol,
	}, {
		name:       "simple reply with data after structured was negotiated",
		structured: true,
		req:        read,
		reply:      cat(AppendSimpleReply(nil, 0, ck), []byte("abcdefgh")),
		wantErr:    ErrProtocol,
	}, {
		name:       "structured error chunk",
		structured: true,
		req:        read,
		reply: cat(
			chunk(0, ChunkOffsetData, ck, offsetData(100, []byte("abcd"))),
			chunk(done, ChunkErrorOffset, ck, AppendChunkError(nil, ChunkErr{Errno: EIO, Message: "bad sector", Offset: 104, HasOffset: true})),
		),
		want: &Reply{Errno: Errno(EIO), Message: "bad sector", ErrorOffset: 104, HasErrorOffset: true, Chunks: []Chunk{
			{Type: ChunkOffsetData, Cookie: ck, Length: 12},
			{Flags: done, Type: ChunkErrorOffset, Cookie: ck, Length: 4 + 2 + 10 + 8},
		}},
	}, {
		name:       "error chunk with error zero",
		structured: true,
		req:        read,
		reply:      chunk(done, ChunkError, ck, AppendChunkError(nil, ChunkErr{})),
		wantErr:    ErrProtocol,
	}, {
		name:       "NONE without DONE",
		structured: true,
		req:        Request{Type: CmdFlush, Cookie: ck},
		reply:      chunk(0, ChunkNone, ck, nil),
		wantErr:    ErrProtocol,
	}, {
		name:       "BLOCK_STATUS",
		structured: true,
		req:        bs,
		reply:      chunk(done, ChunkBlockStatus, ck, AppendBlockStatus(nil, 1, []Extent{{1024, 0}, {3072, StateHole | StateZero}})),
		want: &Reply{
			Extents: map[uint32][]Extent{1: {{1024, 0}, {3072, StateHole | StateZero}}},
			Chunks:  []Chunk{{Flags: done, Type: ChunkBlockStatus, Cookie: ck, Length: 4 + 16}},
		},
	}, {
		name:       "BLOCK_STATUS unknown context",
		structured: true,
		req:        bs,
		reply:      chunk(done, ChunkBlockStatus, ck, AppendBlockStatus(nil, 9, []Extent{{1024, 0}})),
		wantErr:    ErrProtocol,
	}, {
		name:       "BLOCK_STATUS REQ_ONE with two extents",
		structured: true,
		req:        Request{Type: CmdBlockStatus, Flags: CmdFlagReqOne, Cookie: ck, Length: 4096},
		reply:      chunk(done, ChunkBlockStatus, ck, AppendBlockStatus(nil, 1, []Extent{{1024, 0}, {3072, 0}})),
		wantErr:    ErrProtocol,
	}, {
		name:       "BLOCK_STATUS missing context",
		structured: true,
		req:        bs,
		reply:      chunk(done, ChunkNone, ck, nil),
		wantErr:    ErrProtocol,
	}, {
		name:       "simple reply to WRITE under structured",
		structured: true,
		req:        Request{Type: CmdWrite, Cookie: ck, Length: 3},
		reply:      AppendSimpleReply(nil, EPERM, ck),
		want:       &Reply{Errno: Errno(EPERM)},
	}, {
		name:    "structured reply without negotiation",
		req:     Request{Type: CmdFlush, Cookie: ck},
		reply:   chunk(done, ChunkNone, ck, nil),
		wantErr: ErrProtocol,
	}, {
		name:       "unknown chunk type",
		structured: true,
		req:        Request{Type: CmdFlush, Cookie: ck},
		reply:      chunk(done, 77, ck, nil),
		wantErr:    ErrProtocol,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, s := pipe(t)
			got := oneReply(t, s, tt.reply)
			n := Negotiated{Structured: tt.structured}
			if tt.structured {
				n.MetaContexts = map[string]uint32{MetaContextBaseAllocation: 1}
			}
			cl := NewClient(c, n)
			var payload []byte
			if tt.req.Type == CmdWrite {
				payload = make([]byte, tt.req.Length)
			}
			r, err := cl.Do(tt.req, payload)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Do error %v, want %v", err, tt.wantErr)
				}
				if _, err2 := cl.Do(tt.req, nil); err2 == nil {
					t.Errorf("client usable after a protocol error")
				}
				return
			}
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			if !reflect.DeepEqual(r, tt.want) {
				t.Errorf("Do = %+v\nwant %+v", r, tt.want)
			}
			if req := <-got; req != tt.req {
				t.Errorf("server read %+v, want %+v", req, tt.req)
			}
		})
	}
}

// memServer is a tiny transmission-phase server over an in-memory disk. In
// structured mode it splits every READ into a data chunk and a hole or data
// chunk, sent in reverse order.
func memServer(rw io.ReadWriter, disk []byte, structured bool, ctxID uint32) error {
	buf := make([]byte, RequestHeaderSize)
	for {
		req, err := ReadRequest(rw, buf)
		if err != nil {
			return err
		}
		end := req.Offset + uint64(req.Length)
		inRange := end <= uint64(len(disk)) && end >= req.Offset
		var payload []byte
		if req.Type == CmdWrite {
			payload = make([]byte, req.Length)
			if _, err := io.ReadFull(rw, payload); err != nil {
				return err
			}
		}
		var out []byte
		switch {
		case req.Type == CmdDisc:
			return nil
		case !inRange && structured && (req.Type == CmdRead || req.Type == CmdBlockStatus):
			out = chunk(ChunkFlagDone, ChunkError, req.Cookie, AppendChunkError(nil, ChunkErr{Errno: EINVAL, Message: "out of range"}))
		case !inRange && req.Type == CmdWrite:
			out = AppendSimpleReply(nil, ENOSPC, req.Cookie)
		case !inRange:
			out = AppendSimpleReply(nil, EINVAL, req.Cookie)
		case req.Type == CmdRead && !structured:
			out = append(AppendSimpleReply(nil, 0, req.Cookie), disk[req.Offset:end]...)
		case req.Type == CmdRead:
			half := req.Offset + uint64(req.Length)/2
			second := disk[half:end]
			if len(second) > 0 && bytes.Count(second, []byte{0}) == len(second) {
				out = chunk(0, ChunkOffsetHole, req.Cookie, AppendOffsetHole(nil, half, uint32(len(second))))
			} else if len(second) > 0 {
				out = chunk(0, ChunkOffsetData, req.Cookie, offsetData(half, second))
			}
			if half > req.Offset {
				out = append(out, chunk(0, ChunkOffsetData, req.Cookie, offsetData(req.Offset, disk[req.Offset:half]))...)
			}
			out = append(out, chunk(ChunkFlagDone, ChunkNone, req.Cookie, nil)...)
		case req.Type == CmdWrite:
			copy(disk[req.Offset:], payload)
			out = AppendSimpleReply(nil, 0, req.Cookie)
		case req.Type == CmdTrim || req.Type == CmdWriteZeroes:
			clear(disk[req.Offset:end])
			out = AppendSimpleReply(nil, 0, req.Cookie)
		case req.Type == CmdBlockStatus:
			ext := []Extent{{Length: req.Length, Flags: 0}}
			if req.Length > 1 && req.Flags&CmdFlagReqOne == 0 {
				ext = []Extent{{req.Length / 2, 0}, {req.Length - req.Length/2, StateHole | StateZero}}
			}
			out = chunk(ChunkFlagDone, ChunkBlockStatus, req.Cookie, AppendBlockStatus(nil, ctxID, ext))
		default: // FLUSH, CACHE
			out = AppendSimpleReply(nil, 0, req.Cookie)
		}
		if _, err := rw.Write(out); err != nil {
			return err
		}
	}
}

func TestClientAgainstMemServer(t *testing.T) {
	for _, structured := range []bool{false, true} {
		name := "simple"
		if structured {
			name = "structured"
		}
		t.Run(name, func(t *testing.T) {
			c, s := pipe(t)
			disk := make([]byte, 1<<16)
			errc := make(chan error, 1)
			go func() { errc <- memServer(s, disk, structured, 5) }()
			n := Negotiated{Structured: structured, ExportInfo: ExportInfo{Size: uint64(len(disk)), MaxBlock: 4096}}
			if structured {
				n.MetaContexts = map[string]uint32{MetaContextBaseAllocation: 5}
			}
			cl := NewClient(c, n)

			data := bytes.Repeat([]byte("nbdboot!"), 1500) // 12000 bytes: three WRITEs of at most 4096
			if n, err := cl.WriteAt(data, 1000, CmdFlagFUA); err != nil || n != len(data) {
				t.Fatalf("WriteAt = %d, %v", n, err)
			}
			if err := cl.Flush(); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			got := make([]byte, len(data)+2000)
			if n, err := cl.ReadAt(got, 0); err != nil || n != len(got) {
				t.Fatalf("ReadAt = %d, %v", n, err)
			}
			want := append(append(make([]byte, 1000), data...), make([]byte, 1000)...)
			if !bytes.Equal(got, want) {
				t.Fatalf("ReadAt returned different data")
			}
			if err := cl.WriteZeroes(1000, 8, CmdFlagNoHole); err != nil {
				t.Fatalf("WriteZeroes: %v", err)
			}
			if err := cl.Trim(1008, 8, 0); err != nil {
				t.Fatalf("Trim: %v", err)
			}
			if err := cl.Cache(0, 4096); err != nil {
				t.Fatalf("Cache: %v", err)
			}
			if _, err := cl.ReadAt(got[:20], 1000); err != nil || !bytes.Equal(got[:20], append(make([]byte, 16), "nbdb"...)) {
				t.Fatalf("ReadAt after zeroing = %q, %v", got[:20], err)
			}
			if _, err := cl.ReadAt(got[:10], int64(len(disk))-5); !errors.Is(err, Errno(EINVAL)) {
				t.Errorf("ReadAt past the end: %v, want EINVAL", err)
			}
			if _, err := cl.WriteAt(got[:10], int64(len(disk))-5, 0); !errors.Is(err, Errno(ENOSPC)) {
				t.Errorf("WriteAt past the end: %v, want ENOSPC", err)
			}
			ext, err := cl.BlockStatus(0, 4096, 0)
			if structured {
				if err != nil || !reflect.DeepEqual(ext, []Extent{{2048, 0}, {2048, StateHole | StateZero}}) {
					t.Errorf("BlockStatus = %v, %v", ext, err)
				}
				if ext, err := cl.BlockStatus(0, 4096, CmdFlagReqOne); err != nil || len(ext) != 1 {
					t.Errorf("BlockStatus REQ_ONE = %v, %v", ext, err)
				}
			} else if !errors.Is(err, ErrInvalid) {
				t.Errorf("BlockStatus without contexts: %v, want ErrInvalid", err)
			}
			if err := cl.Disconnect(); err != nil {
				t.Fatalf("Disconnect: %v", err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("server: %v", err)
			}
		})
	}
}

func TestClientOverServerHandshake(t *testing.T) {
	c, ch := startServer(t, ServerOptions{})
	n, err := ClientHandshake(c, ClientOptions{Export: "root", Structured: true, MetaContexts: []string{MetaContextBaseAllocation}})
	if err != nil {
		t.Fatalf("ClientHandshake: %v", err)
	}
	res := <-ch
	if res.err != nil {
		t.Fatalf("ServerHandshake: %v", res.err)
	}
	disk := make([]byte, 8192)
	errc := make(chan error, 1)
	go func() { errc <- memServer(res.sess.Conn, disk, res.sess.Structured, 5) }()
	cl := NewClient(c, n)
	if _, err := cl.WriteAt([]byte("hello"), 10, 0); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 5)
	if _, err := cl.ReadAt(p, 10); err != nil || string(p) != "hello" {
		t.Fatalf("ReadAt = %q, %v", p, err)
	}
	// memServer answers with context id 5, the handshake agreed on 1.
	if _, err := cl.BlockStatus(0, 512, 0); !errors.Is(err, ErrProtocol) {
		t.Errorf("BlockStatus with a foreign context id: %v, want ErrProtocol", err)
	}
	cl.Disconnect()
	<-errc
}

func TestErrnoNames(t *testing.T) {
	for e, want := range map[uint32]string{EPERM: "EPERM", EIO: "EIO", ENOMEM: "ENOMEM", EINVAL: "EINVAL", ENOSPC: "ENOSPC", EOVERFLOW: "EOVERFLOW", ENOTSUP: "ENOTSUP", ESHUTDOWN: "ESHUTDOWN", 99: "errno 99"} {
		if got := Errno(e).Error(); got != want {
			t.Errorf("Errno(%d) = %q, want %q", e, got, want)
		}
	}
}
