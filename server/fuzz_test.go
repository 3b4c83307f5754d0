package server

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/protocol"
)

// fakeConn is a net.Conn reading a fixed request stream and recording
// everything written to it.
type fakeConn struct {
	r   *bytes.Reader
	mu  sync.Mutex
	out bytes.Buffer
}

func (f *fakeConn) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *fakeConn) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.Write(p)
}
func (f *fakeConn) Close() error                       { return nil }
func (f *fakeConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (f *fakeConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (f *fakeConn) SetDeadline(t time.Time) error      { return nil }
func (f *fakeConn) SetReadDeadline(t time.Time) error  { return nil }
func (f *fakeConn) SetWriteDeadline(t time.Time) error { return nil }

// expectedReplies counts the requests a server must answer in stream: the
// complete ones before a bad magic, a DISC or the end.
func expectedReplies(stream []byte) int {
	n := 0
	for len(stream) >= protocol.RequestHeaderSize {
		req, err := protocol.ParseRequest(stream)
		if err != nil || req.Type == protocol.CmdDisc {
			return n
		}
		stream = stream[protocol.RequestHeaderSize:]
		if req.Type == protocol.CmdWrite {
			if uint64(len(stream)) < uint64(req.Length) {
				return n
			}
			stream = stream[req.Length:]
		}
		n++
	}
	return n
}

// FuzzRequests feeds arbitrary request streams to a structured connection
// on a 64 KiB export and checks that it neither panics nor hangs, and
// that it answers every complete request exactly once with well-formed
// replies.
func FuzzRequests(f *testing.F) {
	req := func(r protocol.Request, payload ...byte) []byte {
		return append(protocol.AppendRequest(nil, r), payload...)
	}
	f.Add(req(protocol.Request{Type: protocol.CmdRead, Cookie: 1, Length: 512}))
	f.Add(cat(req(protocol.Request{Type: protocol.CmdWrite, Cookie: 2, Offset: 10, Length: 3}, 1, 2, 3),
		req(protocol.Request{Type: protocol.CmdFlush, Cookie: 3})))
	f.Add(req(protocol.Request{Type: protocol.CmdBlockStatus, Flags: protocol.CmdFlagReqOne, Cookie: 4, Length: 4096}))
	f.Add(req(protocol.Request{Type: protocol.CmdWriteZeroes, Flags: protocol.CmdFlagNoHole | protocol.CmdFlagFUA, Cookie: 5, Length: 4096}))
	f.Add(req(protocol.Request{Type: protocol.CmdRead, Flags: protocol.CmdFlagDF, Cookie: 6, Offset: 1 << 16, Length: 1}))
	f.Add(req(protocol.Request{Type: 77, Flags: 0xffff, Cookie: 7}))
	f.Add(req(protocol.Request{Type: protocol.CmdDisc}))
	f.Fuzz(func(t *testing.T, stream []byte) {
		tab, _, _ := memExports(t, 1<<16)
		exp, _ := tab.Resolve("mem")
		srv, err := New(tab, testLimits(), nil)
		if err != nil {
			t.Fatal(err)
		}
		fc := &fakeConn{r: bytes.NewReader(stream)}
		sess := &protocol.Session{
			Export: exp.Info(), Structured: true, Conn: fc,
			MetaContexts: []protocol.MetaContext{{ID: 1, Name: protocol.MetaContextBaseAllocation}},
		}
		c := newConn(srv, fc, sess, exp, srv.log)
		done := make(chan struct{})
		go func() { c.serve(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("connection did not finish")
		}
		out := fc.out.Bytes()
		replies := 0
		for len(out) > 0 {
			h, err := protocol.ReadReplyHeader(bytes.NewReader(out), make([]byte, protocol.ChunkHeaderSize))
			if err != nil {
				t.Fatalf("reply %d: %v", replies, err)
			}
			if !h.Structured {
				out = out[protocol.SimpleReplyHeaderSize:]
				replies++
				continue
			}
			n := protocol.ChunkHeaderSize + int(h.Chunk.Length)
			if n > len(out) {
				t.Fatalf("chunk of %d bytes with %d left", h.Chunk.Length, len(out)-protocol.ChunkHeaderSize)
			}
			if h.Chunk.Type&0x8000 != 0 && (h.Chunk.Length < 6 || binary.BigEndian.Uint32(out[20:]) == 0) {
				t.Fatalf("bad error chunk % x", out[:n])
			}
			out = out[n:]
			if h.Chunk.Flags&protocol.ChunkFlagDone != 0 {
				replies++
			}
		}
		if want := expectedReplies(stream); replies != want {
			t.Fatalf("%d replies, want %d", replies, want)
		}
		_ = io.EOF
	})
}
