package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/nbdboot/nbdboot/protocol"
)

// nowaitMem is a memBackend whose non-blocking reads find some ranges
// uncached: offsets in the second quarter would block, those in the third
// are cached only in part.
type nowaitMem struct {
	*memBackend
}

func (b nowaitMem) ReadAtNoWait(p []byte, off int64) (int, error) {
	q := b.Size() / 4
	switch {
	case off >= q && off < 2*q:
		return 0, errWouldBlock
	case off >= 2*q && off < 3*q && len(p) > 1:
		return b.ReadAt(p[:len(p)/2], off)
	}
	return b.ReadAt(p, off)
}

// TestInlinePipeline pipelines many more requests than the read loop
// queues or the connection serves at once — READs cached, uncached and
// cached in part, WRITEs, a FLUSH — and checks every reply and the data,
// with simple and structured replies, with the default slots and with 2.
func TestInlinePipeline(t *testing.T) {
	const size = 1 << 20
	for _, structured := range []bool{false, true} {
		for _, slots := range []int{64, 2} {
			t.Run(fmt.Sprintf("structured=%v/slots=%d", structured, slots), func(t *testing.T) {
				mem := newMemBackend(size)
				tab, err := NewExports(&Export{Name: "mem", Backend: nowaitMem{mem}})
				if err != nil {
					t.Fatal(err)
				}
				lim := testLimits()
				lim.MaxInFlight = slots
				ts := startServer(t, tab, lim)
				c := dial(t, ts.addr, "mem", structured)

				const n = 3 * maxQueued
				reqs := map[uint64]protocol.Request{}
				var batch []byte
				for i := range n {
					off := uint64(i) * (3 * size / 4 / n) &^ 511 // below the WRITEs, in the last quarter
					req := protocol.Request{Type: protocol.CmdRead, Cookie: uint64(i + 1), Offset: off, Length: 4096}
					switch i % 5 {
					case 1:
						req.Type = protocol.CmdWrite
						req.Length = 512
						req.Offset = uint64(size - 512*(i+1))
					case 3:
						req.Length = 64 << 10
						req.Offset = min(off, 3*size/4-64<<10)
					}
					if i == n/2 {
						req = protocol.Request{Type: protocol.CmdFlush, Cookie: uint64(i + 1)}
					}
					reqs[req.Cookie] = req
					batch = protocol.AppendRequest(batch, req)
					if req.Type == protocol.CmdWrite {
						batch = append(batch, bytes.Repeat([]byte{byte(i)}, int(req.Length))...)
					}
				}
				c.write(batch)
				for range n {
					r, err := c.replyAny(reqs)
					if err != nil {
						t.Fatal(err)
					}
					req := reqs[r.Cookie]
					delete(reqs, r.Cookie)
					if r.Errno != 0 {
						t.Fatalf("%s %d: errno %d", protocol.CommandName(req.Type), req.Cookie, r.Errno)
					}
					if req.Type == protocol.CmdRead && !bytes.Equal(r.Data, pattern(int64(req.Offset), int(req.Length))) {
						t.Fatalf("READ %d at %d: wrong data", req.Cookie, req.Offset)
					}
				}
				for i := 1; i < n; i += 5 {
					if i == n/2 {
						continue // the FLUSH
					}
					off := size - 512*(i+1)
					if got := mem.snapshot(off, 512); !bytes.Equal(got, bytes.Repeat([]byte{byte(i)}, 512)) {
						t.Errorf("WRITE %d at %d did not land", i+1, off)
					}
				}
				c.disconnect()
			})
		}
	}
}

// replyAny reads the next reply, whichever request of reqs it answers.
func (c *client) replyAny(reqs map[uint64]protocol.Request) (result, error) {
	hdr, err := c.br.Peek(16)
	if err != nil {
		return result{}, err
	}
	// Simple (magic, error) and structured (magic, flags, type) reply
	// headers both have the cookie at byte 8.
	cookie := binary.BigEndian.Uint64(hdr[8:])
	req, ok := reqs[cookie]
	if !ok {
		return result{}, fmt.Errorf("reply for unknown cookie %d", cookie)
	}
	return c.reply(req)
}

// TestFileReadAtNoWait reads data just written (so in the page cache)
// without waiting, whole and at an unaligned offset.
func TestFileReadAtNoWait(t *testing.T) {
	data := pattern(0, 1<<20)
	b := openWritten(t, data)
	for _, r := range []struct{ off, n int }{{0, 1 << 20}, {12345, 4096}, {1<<20 - 1, 1}} {
		p := make([]byte, r.n)
		n, err := b.ReadAtNoWait(p, int64(r.off))
		if errors.Is(err, errWouldBlock) {
			t.Logf("read %d at %d: not cached (evicted, or no RWF_NOWAIT here)", r.n, r.off)
			continue
		}
		if err != nil || n != r.n || !bytes.Equal(p, data[r.off:r.off+r.n]) {
			t.Errorf("read %d at %d: n %d err %v, data equal %v", r.n, r.off, n, err, bytes.Equal(p[:n], data[r.off:r.off+n]))
		}
	}
	if n, err := b.ReadAtNoWait(nil, 0); n != 0 || err != nil {
		t.Errorf("empty read: %d, %v", n, err)
	}
}
