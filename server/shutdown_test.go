package server

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/protocol"
)

// TestShutdownDrain cancels Serve's context while a READ is held in the
// backend: that READ still completes, new requests get ESHUTDOWN, new
// connections are refused, an idle connection is closed after the grace
// period, and Serve returns once the client has sent DISC.
func TestShutdownDrain(t *testing.T) {
	tab, rw, _ := memExports(t, memSize)
	entered, release := make(chan struct{}), make(chan struct{})
	rw.readGate = func(off int64) {
		if off == 0 {
			close(entered)
			<-release
		}
	}
	begun := make(chan struct{})
	lim := testLimits()
	lim.ShutdownGrace = 2 * time.Second // long enough that the check below cannot race it
	ts := startServer(t, tab, lim, func(s *Server) { s.onShutdown = func() { close(begun) } })
	c := dial(t, ts.addr, "mem", true)
	idle := dial(t, ts.addr, "mem", false)

	held := protocol.Request{Type: protocol.CmdRead, Cookie: 1, Offset: 0, Length: 4096}
	c.send(held, nil)
	<-entered
	ts.cancel()
	<-begun

	// New requests, a WRITE's payload included, are answered ESHUTDOWN.
	for _, req := range []protocol.Request{
		{Type: protocol.CmdRead, Cookie: 2, Offset: 4096, Length: 4096},
		{Type: protocol.CmdWrite, Cookie: 3, Offset: 4096, Length: 4096},
		{Type: protocol.CmdFlush, Cookie: 4},
	} {
		var payload []byte
		if req.Type == protocol.CmdWrite {
			payload = make([]byte, req.Length)
		}
		if r := c.do(req, payload); r.Errno != protocol.ESHUTDOWN {
			t.Errorf("%s during shutdown: errno %d, want ESHUTDOWN", protocol.CommandName(req.Type), r.Errno)
		}
	}
	// The listener is closed.
	if nc, err := net.Dial("tcp", ts.addr); err == nil {
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, _ := io.Copy(io.Discard, nc); n != 0 {
			t.Errorf("new connection during shutdown got %d bytes", n)
		}
		nc.Close()
	}
	// The idle connection is closed after the grace period.
	idle.expectClosed()

	// The held READ completes with its data.
	close(release)
	r, err := c.reply(held)
	if err != nil || r.Cookie != 1 || r.Errno != 0 || !bytes.Equal(r.Data, pattern(0, 4096)) {
		t.Fatalf("held READ: %v, cookie %d errno %d", err, r.Cookie, r.Errno)
	}
	select {
	case err := <-ts.done:
		t.Fatalf("Serve returned (%v) before the client disconnected or the grace period ended", err)
	default:
	}
	c.disconnect()
	select {
	case err := <-ts.done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		ts.done <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the last connection closed")
	}
}

// TestShutdownDuringHandshake closes connections still negotiating.
func TestShutdownDuringHandshake(t *testing.T) {
	tab, _, _ := memExports(t, memSize)
	ts := startServer(t, tab, testLimits())
	c := dialRaw(t, ts.addr)
	if _, err := io.ReadFull(c.br, make([]byte, protocol.ServerGreetingSize)); err != nil {
		t.Fatal(err)
	}
	ts.cancel()
	c.expectClosed()
}

// TestHandshakeDeadline: a client that stops in the middle of the
// handshake is closed once the deadline passes.
func TestHandshakeDeadline(t *testing.T) {
	tab, _, _ := memExports(t, memSize)
	lim := testLimits()
	lim.HandshakeTimeout = time.Second
	ts := startServer(t, tab, lim)
	c := dialRaw(t, ts.addr)
	if _, err := io.ReadFull(c.br, make([]byte, protocol.ServerGreetingSize)); err != nil {
		t.Fatal(err)
	}
	// Client flags, then half an option header, then silence.
	c.write(cat(u32(protocol.ClientFlagFixedNewstyle), u64(protocol.IHaveOpt)))
	c.expectClosed() // fails on the 10 s read deadline if nothing closes it

	// The deadline does not apply after the handshake.
	d := dial(t, ts.addr, "mem", false)
	d.checkGoodRead(false)
	d.disconnect()
}

// TestNegotiatingCap: with max_negotiating connections in the handshake,
// another is closed without a greeting (CVE-2024-7409); once one finishes
// its handshake there is room again.
func TestNegotiatingCap(t *testing.T) {
	tab, _, _ := memExports(t, memSize)
	lim := testLimits()
	lim.MaxNegotiating = 2
	ts := startServer(t, tab, lim)
	var waiting []*client
	for range 2 {
		c := dialRaw(t, ts.addr)
		if _, err := io.ReadFull(c.br, make([]byte, protocol.ServerGreetingSize)); err != nil {
			t.Fatal(err)
		}
		waiting = append(waiting, c)
	}
	refused := dialRaw(t, ts.addr)
	refused.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := io.Copy(io.Discard, refused.br); n != 0 || err != nil {
		t.Fatalf("connection over the cap: got %d bytes, %v; want a close without a greeting", n, err)
	}
	// One negotiating client finishes; its transmission starts only after
	// its slot is free.
	a := waiting[0]
	a.write(u32(protocol.ClientFlagFixedNewstyle | protocol.ClientFlagNoZeroes))
	a.goExport(t, "mem")
	a.checkGoodRead(false)
	b := dial(t, ts.addr, "mem", false)
	b.checkGoodRead(false)
}

// TestMaxConnections refuses connections over the total cap.
func TestMaxConnections(t *testing.T) {
	tab, _, _ := memExports(t, memSize)
	lim := testLimits()
	lim.MaxConnections = 1
	ts := startServer(t, tab, lim)
	a := dial(t, ts.addr, "mem", false)
	over := dialRaw(t, ts.addr)
	if n, _ := io.Copy(io.Discard, over.br); n != 0 {
		t.Fatalf("connection over max_connections got %d bytes", n)
	}
	a.checkGoodRead(false)
	a.disconnect()
}

// TestReplyTimeout: a client that stops reading replies is dropped once a
// reply cannot be sent within reply_timeout, freeing what it held.
func TestReplyTimeout(t *testing.T) {
	tab, _, _ := memExports(t, memSize)
	lim := testLimits()
	lim.ReplyTimeout = 200 * time.Millisecond
	closed := make(chan struct{}, 1)
	ts := startServer(t, tab, lim, func(s *Server) { s.onConnDone = func() { closed <- struct{}{} } })
	c := dial(t, ts.addr, "mem", false)
	const n = 100 // 100 MiB of replies: far more than the socket buffers hold
	var out []byte
	for i := range n {
		out = protocol.AppendRequest(out, protocol.Request{Type: protocol.CmdRead, Cookie: uint64(i), Length: memSize})
	}
	c.write(out)
	select {
	case <-closed:
	case <-time.After(15 * time.Second):
		t.Fatal("connection not dropped while its client did not read")
	}
	got, _ := io.Copy(io.Discard, c.br)
	if got >= n*(memSize+16) {
		t.Errorf("client received all %d bytes of replies", got)
	}
	// The server still serves others.
	d := dial(t, ts.addr, "mem", false)
	d.checkGoodRead(false)
}
