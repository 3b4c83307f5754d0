package server

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/nbdboot/nbdboot/protocol"
)

// TestOutOfOrder holds the first READ in the backend until every later
// request on the same connection has been answered: replies must come out
// of order, matched by cookie.
func TestOutOfOrder(t *testing.T) {
	tab, rw, _ := memExports(t, memSize)
	release := make(chan struct{})
	rw.readGate = func(off int64) {
		if off == 0 {
			<-release
		}
	}
	ts := startServer(t, tab, testLimits())
	c := dial(t, ts.addr, "mem", false)
	const n = 50
	reqs := map[uint64]protocol.Request{}
	var out []byte
	add := func(r protocol.Request, payload []byte) {
		reqs[r.Cookie] = r
		out = append(protocol.AppendRequest(out, r), payload...)
	}
	add(protocol.Request{Type: protocol.CmdRead, Cookie: 1000, Offset: 0, Length: 4096}, nil)
	for i := 1; i <= n; i++ {
		off := uint64(i) * 8192
		if i%2 == 0 {
			add(protocol.Request{Type: protocol.CmdWrite, Cookie: uint64(i), Offset: off, Length: 4096}, bytes.Repeat([]byte{byte(i)}, 4096))
		} else {
			add(protocol.Request{Type: protocol.CmdRead, Cookie: uint64(i), Offset: off, Length: 4096}, nil)
		}
	}
	c.write(out)
	seen := map[uint64]bool{}
	var hbuf [protocol.ChunkHeaderSize]byte
	for len(seen) < n+1 {
		if len(seen) == n {
			close(release) // every other request is answered
		}
		h, err := protocol.ReadReplyHeader(c.br, hbuf[:])
		if err != nil {
			t.Fatal(err)
		}
		req, ok := reqs[h.Cookie]
		if !ok || seen[h.Cookie] {
			t.Fatalf("reply with unknown or repeated cookie %d", h.Cookie)
		}
		seen[h.Cookie] = true
		if h.Cookie == 1000 && len(seen) != n+1 {
			t.Fatalf("held READ answered as reply %d of %d", len(seen), n+1)
		}
		if h.Errno != 0 {
			t.Fatalf("cookie %d: errno %d", h.Cookie, h.Errno)
		}
		if req.Type == protocol.CmdRead {
			data := make([]byte, req.Length)
			if _, err := io.ReadFull(c.br, data); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data, pattern(int64(req.Offset), int(req.Length))) {
				t.Fatalf("cookie %d: wrong data", h.Cookie)
			}
		}
	}
	for i := 2; i <= n; i += 2 {
		if got := rw.snapshot(i*8192, 1)[0]; got != byte(i) {
			t.Errorf("WRITE %d: byte %#x", i, got)
		}
	}
	c.disconnect()
}

// TestManyConnections runs connections in parallel, each writing and
// reading back its own region, with a server-wide payload cap smaller
// than what they send at once.
func TestManyConnections(t *testing.T) {
	const conns, rounds, size = 12, 8, 256 << 10
	tab, rw, _ := memExports(t, conns*size)
	lim := testLimits()
	lim.MaxBufferBytes = 1 << 20
	lim.MaxInFlight = 4
	ts := startServer(t, tab, lim)
	clients := make([]*client, conns)
	for i := range clients {
		clients[i] = dial(t, ts.addr, "mem", i%2 == 0)
	}
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- c.readWriteRounds(i, rounds, size)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for i := range conns {
		want := bytes.Repeat([]byte{byte(i + rounds)}, size)
		if !bytes.Equal(rw.snapshot(i*size, size), want) {
			t.Errorf("connection %d: region holds the wrong data", i)
		}
	}
	for _, c := range clients {
		c.disconnect()
	}
}

// readWriteRounds pipelines a WRITE of its region and a READ back, rounds
// times, then checks every reply.
func (c *client) readWriteRounds(id, rounds, size int) error {
	off := uint64(id * size)
	var out []byte
	reqs := map[uint64]protocol.Request{}
	for r := 1; r <= rounds; r++ {
		w := protocol.Request{Type: protocol.CmdWrite, Flags: protocol.CmdFlagFUA, Cookie: uint64(2 * r), Offset: off, Length: uint32(size)}
		out = append(protocol.AppendRequest(out, w), bytes.Repeat([]byte{byte(id + r)}, size)...)
		reqs[w.Cookie] = w
	}
	rd := protocol.Request{Type: protocol.CmdRead, Cookie: 1, Offset: off, Length: uint32(size)}
	if _, err := c.nc.Write(out); err != nil {
		return err
	}
	for range rounds {
		var hbuf [protocol.ChunkHeaderSize]byte
		h, err := protocol.ReadReplyHeader(c.br, hbuf[:])
		if err != nil {
			return err
		}
		if _, ok := reqs[h.Cookie]; !ok || h.Errno != 0 {
			return fmt.Errorf("connection %d: reply cookie %d errno %d", id, h.Cookie, h.Errno)
		}
		delete(reqs, h.Cookie)
	}
	// All writes answered: the read sees the last one (writes of one
	// region may complete in any order, so compare with what is stored).
	if _, err := c.nc.Write(protocol.AppendRequest(nil, rd)); err != nil {
		return err
	}
	r, err := c.reply(rd)
	if err != nil {
		return err
	}
	if r.Errno != 0 || len(r.Data) != size || !bytes.Equal(r.Data, bytes.Repeat(r.Data[:1], size)) {
		return fmt.Errorf("connection %d: read back errno %d, torn or short data", id, r.Errno)
	}
	// Make the region deterministic for the caller's check.
	last := protocol.Request{Type: protocol.CmdWrite, Cookie: 99, Offset: off, Length: uint32(size)}
	if _, err := c.nc.Write(append(protocol.AppendRequest(nil, last), bytes.Repeat([]byte{byte(id + rounds)}, size)...)); err != nil {
		return err
	}
	if r, err := c.reply(last); err != nil || r.Errno != 0 {
		return fmt.Errorf("connection %d: last write: %v errno %d", id, err, r.Errno)
	}
	return nil
}
