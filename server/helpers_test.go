package server

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/protocol"
)

// memBackend is an in-memory Backend for tests; readGate, if set, is
// called before every read (to hold requests in flight).
type memBackend struct {
	mu       sync.Mutex
	data     []byte
	readGate func(off int64)
	readErr  error
	syncs    int
}

func newMemBackend(size int) *memBackend {
	b := &memBackend{data: make([]byte, size)}
	fillPattern(b.data, 0)
	return b
}

// fillPattern writes a position-dependent pattern, so misplaced data shows.
func fillPattern(p []byte, off int64) {
	for i := range p {
		x := uint64(off) + uint64(i)
		p[i] = byte(x ^ x>>8 ^ x>>16)
	}
}

func pattern(off int64, n int) []byte {
	p := make([]byte, n)
	fillPattern(p, off)
	return p
}

func (b *memBackend) ReadAt(p []byte, off int64) (int, error) {
	if b.readGate != nil {
		b.readGate(off)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.readErr != nil {
		return 0, b.readErr
	}
	return copy(p, b.data[off:]), nil
}

func (b *memBackend) WriteAt(p []byte, off int64) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return copy(b.data[off:], p), nil
}

// snapshot copies n bytes at off under the lock.
func (b *memBackend) snapshot(off, n int) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.data[off:off+n]...)
}

func (b *memBackend) Size() int64 { return int64(len(b.data)) }
func (b *memBackend) Sync() error {
	b.mu.Lock()
	b.syncs++
	b.mu.Unlock()
	return nil
}
func (b *memBackend) Trim(off, length int64) error { return nil }
func (b *memBackend) Zero(off, length int64, noHole, fast bool) error {
	if fast {
		return ErrNotFast
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.data[off : off+length])
	return nil
}
func (b *memBackend) Extents(off, length int64, max int) ([]protocol.Extent, error) {
	return []protocol.Extent{{Length: uint32(length)}}, nil
}
func (b *memBackend) MaybeSparse() bool             { return false }
func (b *memBackend) Cache(off, length int64) error { return nil }
func (b *memBackend) Close() error                  { return nil }

// testLogger discards logs unless NBDSERVE_TEST_LOG=1.
func testLogger() *slog.Logger {
	if os.Getenv("NBDSERVE_TEST_LOG") == "1" {
		return NewLogger(os.Stderr, true)
	}
	return nil
}

func testLimits() Limits {
	l := DefaultLimits()
	l.ShutdownGrace = 50 * time.Millisecond
	return l
}

type testServer struct {
	addr   string
	srv    *Server
	cancel context.CancelFunc
	done   chan error
}

// startServer serves res on 127.0.0.1:0 until the test ends.
func startServer(t testing.TB, res Resolver, lim Limits, setup ...func(*Server)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(res, lim, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range setup {
		f(srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{addr: ln.Addr().String(), srv: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-ts.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
			ts.done <- err
		case <-time.After(20 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
	})
	return ts
}

func (ts *testServer) uri(export string) string { return "nbd://" + ts.addr + "/" + export }

func (ts *testServer) port() string {
	_, p, _ := net.SplitHostPort(ts.addr)
	return p
}

// memExports builds a table: "mem" (rw) and "ro" (read-only), both on
// their own memBackend of size bytes.
func memExports(t testing.TB, size int) (*Exports, *memBackend, *memBackend) {
	t.Helper()
	rw, ro := newMemBackend(size), newMemBackend(size)
	tab, err := NewExports(
		&Export{Name: "mem", Description: "in memory", Backend: rw},
		&Export{Name: "ro", ReadOnly: true, Backend: ro},
	)
	if err != nil {
		t.Fatal(err)
	}
	return tab, rw, ro
}

// fileExports makes a file of size bytes (sparse unless fill) in a temp
// dir and exports it as "disk" and read-only as "disk-ro".
func fileExports(t testing.TB, size int64, fill func(f *os.File)) (*Exports, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if fill != nil {
		fill(f)
	}
	f.Close()
	tab, err := OpenExports([]ExportConfig{
		{Name: "disk", Path: path, Description: "test disk"},
		{Name: "disk-ro", Path: path, ReadOnly: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tab.Close() })
	return tab, path
}

// client is a raw test client speaking requests and replies by hand.
type client struct {
	t   testing.TB
	nc  net.Conn
	br  *bufio.Reader
	neg protocol.Negotiated
}

// dial connects and negotiates export; structured also selects
// base:allocation.
func dial(t testing.TB, addr, export string, structured bool) *client {
	t.Helper()
	c := dialRaw(t, addr)
	opts := protocol.ClientOptions{Export: export, Structured: structured}
	if structured {
		opts.MetaContexts = []string{protocol.MetaContextBaseAllocation}
	}
	neg, err := protocol.ClientHandshake(c.nc, opts)
	if err != nil {
		t.Fatalf("handshake for %q: %v", export, err)
	}
	c.neg = neg
	return c
}

// dialRaw connects without negotiating.
func dialRaw(t testing.TB, addr string) *client {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *client) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) send(req protocol.Request, payload []byte) {
	c.t.Helper()
	c.write(append(protocol.AppendRequest(nil, req), payload...))
}

// result is a whole reply to one request.
type result struct {
	Cookie uint64
	Errno  uint32
	Data   []byte // READ data, holes filled with zeroes
	Chunks []protocol.Chunk
	Status []uint32 // BLOCK_STATUS: id, then length/flags pairs
}

// reply reads one whole reply; n is the READ length expected (simple
// replies carry no length). Structured chunks are read up to DONE.
func (c *client) reply(req protocol.Request) (result, error) {
	var hbuf [protocol.ChunkHeaderSize]byte
	h, err := protocol.ReadReplyHeader(c.br, hbuf[:])
	if err != nil {
		return result{}, err
	}
	if !h.Structured {
		r := result{Cookie: h.Cookie, Errno: h.Errno}
		if h.Errno == 0 && req.Type == protocol.CmdRead {
			r.Data = make([]byte, req.Length)
			if _, err := io.ReadFull(c.br, r.Data); err != nil {
				return r, err
			}
		}
		return r, nil
	}
	r := result{Cookie: h.Cookie}
	if req.Type == protocol.CmdRead {
		r.Data = make([]byte, req.Length)
	}
	for {
		ch := h.Chunk
		if ch.Cookie != r.Cookie {
			return r, fmt.Errorf("chunk for cookie %d inside reply to %d", ch.Cookie, r.Cookie)
		}
		if ch.Length > protocol.MaxPayload+64 {
			return r, fmt.Errorf("chunk length %d", ch.Length)
		}
		p := make([]byte, ch.Length)
		if _, err := io.ReadFull(c.br, p); err != nil {
			return r, err
		}
		r.Chunks = append(r.Chunks, ch)
		if err := r.addChunk(req, ch, p); err != nil {
			return r, err
		}
		if ch.Flags&protocol.ChunkFlagDone != 0 {
			return r, nil
		}
		if h, err = protocol.ReadReplyHeader(c.br, hbuf[:]); err != nil {
			return r, err
		}
		if !h.Structured {
			return r, errors.New("simple reply inside a structured one")
		}
	}
}

func (r *result) addChunk(req protocol.Request, ch protocol.Chunk, p []byte) error {
	switch ch.Type {
	case protocol.ChunkNone:
	case protocol.ChunkOffsetData, protocol.ChunkOffsetHole:
		if len(p) < 12 && !(ch.Type == protocol.ChunkOffsetData && len(p) >= 9) {
			return fmt.Errorf("content chunk of %d bytes", len(p))
		}
		off := binary.BigEndian.Uint64(p)
		n := uint64(len(p) - 8)
		if ch.Type == protocol.ChunkOffsetHole {
			n = uint64(binary.BigEndian.Uint32(p[8:]))
		}
		if off < req.Offset || off+n > req.Offset+uint64(req.Length) {
			return fmt.Errorf("chunk [%d,+%d) outside request [%d,+%d)", off, n, req.Offset, req.Length)
		}
		if ch.Type == protocol.ChunkOffsetData {
			copy(r.Data[off-req.Offset:], p[8:])
		}
	case protocol.ChunkBlockStatus:
		for i := 0; i+4 <= len(p); i += 4 {
			r.Status = append(r.Status, binary.BigEndian.Uint32(p[i:]))
		}
	case protocol.ChunkError, protocol.ChunkErrorOffset:
		if len(p) < 6 {
			return fmt.Errorf("error chunk of %d bytes", len(p))
		}
		r.Errno = binary.BigEndian.Uint32(p)
	default:
		return fmt.Errorf("unknown chunk type %d", ch.Type)
	}
	return nil
}

// do sends one request and reads its reply.
func (c *client) do(req protocol.Request, payload []byte) result {
	c.t.Helper()
	c.send(req, payload)
	r, err := c.reply(req)
	if err != nil {
		c.t.Fatalf("%s reply: %v", protocol.CommandName(req.Type), err)
	}
	if r.Cookie != req.Cookie {
		c.t.Fatalf("%s reply cookie %d, want %d", protocol.CommandName(req.Type), r.Cookie, req.Cookie)
	}
	return r
}

// expectClosed waits for the server to close the connection, ignoring
// anything it still sends.
func (c *client) expectClosed() {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c.br)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) { // RST: closed with our bytes unread
		c.t.Fatalf("want the server to close the connection, got %v", err)
	}
}

// disconnect sends DISC and waits for the close.
func (c *client) disconnect() {
	c.t.Helper()
	c.send(protocol.Request{Type: protocol.CmdDisc}, nil)
	c.expectClosed()
}
