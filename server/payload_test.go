package server

import (
	"bufio"
	"bytes"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/protocol"
)

// dialFrom connects from local address from and negotiates export with
// simple replies.
func dialFrom(t *testing.T, addr, from, export string) *client {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { nc.Close() })
	neg, err := protocol.ClientHandshake(nc, protocol.ClientOptions{Export: export})
	if err != nil {
		t.Fatalf("handshake for %q from %s: %v", export, from, err)
	}
	return &client{t: t, nc: nc, br: bufio.NewReader(nc), neg: neg}
}

// waitHeld waits (up to 10 s) until address addr holds want budget
// bytes, and fails the test with what it holds if it never does.
func waitHeld(t *testing.T, s *byteSem, addr string, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var held int64
	for time.Now().Before(deadline) {
		s.mu.Lock()
		held = 0
		if h := s.shares[addr]; h != nil {
			held = h.held
		}
		s.mu.Unlock()
		if held == want {
			return
		}
		<-time.After(time.Millisecond) // polls a counter, with a deadline
	}
	t.Fatalf("address %s holds %d budget bytes, want %d", addr, held, want)
}

// TestSlicedPayloadHoldsWhatArrived: four connections each send a WRITE
// header for 32 MiB and one byte of payload, then stall (the stall
// timeout is long). They hold one slice each, not their whole payloads,
// so another address writes and reads 4 MiB at once although the budget
// is 16 MiB (the whole of it, when taken as each header came); the stalled WRITEs change nothing.
func TestSlicedPayloadHoldsWhatArrived(t *testing.T) {
	tab, rw, _ := memExports(t, 64<<20)
	lim := testLimits()
	lim.MaxBufferBytes = 16 << 20
	lim.StallTimeout = time.Minute
	ts := startServer(t, tab, lim)
	for i := range 4 {
		a := dialFrom(t, ts.addr, "127.0.0.1", "mem")
		a.send(protocol.Request{Type: protocol.CmdWrite, Cookie: 1, Offset: uint64(i) * (8 << 20), Length: 32 << 20}, []byte{1})
	}
	waitHeld(t, ts.srv.sem, "127.0.0.1", 4*paySlice)

	good := dialFrom(t, ts.addr, "127.0.0.2", "mem")
	good.nc.SetDeadline(time.Now().Add(5 * time.Second))
	data := bytes.Repeat([]byte{0x5a}, 4<<20)
	if r := good.do(protocol.Request{Type: protocol.CmdWrite, Cookie: 2, Offset: 40 << 20, Length: 4 << 20}, data); r.Errno != 0 {
		t.Fatalf("WRITE during the stalled payloads: errno %d", r.Errno)
	}
	if r := good.do(protocol.Request{Type: protocol.CmdRead, Cookie: 3, Offset: 40 << 20, Length: 4 << 20}, nil); r.Errno != 0 || !bytes.Equal(r.Data, data) {
		t.Fatalf("READ back during the stalled payloads: errno %d, same data %v", r.Errno, bytes.Equal(r.Data, data))
	}
	if !bytes.Equal(rw.snapshot(0, 40<<20), pattern(0, 40<<20)) {
		t.Error("a stalled WRITE changed the export")
	}
}

// TestSlicedPayloadsBudgetSmall: four connections from four addresses
// write 4 MiB each at once through a budget of 1 MiB (one slice): the
// oldest payload's slices go past it, so none waits for ever, and every
// byte lands.
func TestSlicedPayloadsBudgetSmall(t *testing.T) {
	const conns, size = 4, 4 << 20
	tab, rw, _ := memExports(t, conns*size)
	lim := testLimits()
	lim.MaxBufferBytes = 1 << 20
	ts := startServer(t, tab, lim)
	var wg sync.WaitGroup
	errnos := make([]uint32, conns)
	for i := range conns {
		c := dialFrom(t, ts.addr, net.IPv4(127, 0, 1, byte(i+1)).String(), "mem")
		wg.Go(func() {
			req := protocol.Request{Type: protocol.CmdWrite, Cookie: 1, Offset: uint64(i * size), Length: size}
			c.send(req, bytes.Repeat([]byte{0xc3}, size))
			r, err := c.reply(req)
			if err != nil {
				t.Errorf("connection %d: %v", i, err)
			}
			errnos[i] = r.Errno
		})
	}
	wg.Wait()
	for i, e := range errnos {
		if e != 0 {
			t.Errorf("connection %d: errno %d", i, e)
		}
	}
	if !bytes.Equal(rw.snapshot(0, conns*size), bytes.Repeat([]byte{0xc3}, conns*size)) {
		t.Error("the export does not hold what was written")
	}
	s := ts.srv.sem
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.avail != s.max || len(s.payloads) != 0 {
		t.Errorf("after the writes: avail %d of %d, %d payloads queued", s.avail, s.max, len(s.payloads))
	}
}
