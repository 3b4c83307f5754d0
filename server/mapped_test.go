package server

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/nbdboot/nbdboot/internal/nowait"
	"github.com/nbdboot/nbdboot/protocol"
)

// TestMappedRead reads large ranges of a file in the page cache, sent
// from its mapping: all data, data then a hole, a hole then data, and
// unaligned, with simple and structured replies.
func TestMappedRead(t *testing.T) {
	const size = 1 << 20
	hole := [2]int64{512 << 10, 768 << 10} // never written
	tab, _ := fileExports(t, size, func(f *os.File) {
		for _, r := range [][2]int64{{0, hole[0]}, {hole[1], size}} {
			if _, err := f.WriteAt(pattern(r[0], int(r[1]-r[0])), r[0]); err != nil {
				t.Fatal(err)
			}
		}
	})
	want := func(off int64, n int) []byte {
		p := pattern(off, n)
		for i := range p {
			if at := off + int64(i); at >= hole[0] && at < hole[1] {
				p[i] = 0
			}
		}
		return p
	}
	ts := startServer(t, tab, testLimits())
	for _, structured := range []bool{false, true} {
		c := dial(t, ts.addr, "disk-ro", structured)
		for i, r := range []struct {
			off int64
			n   uint32
		}{{0, 256 << 10}, {384 << 10, 256 << 10}, {640 << 10, 384 << 10}, {12345, 100000}, {0, size}} {
			t.Run(fmt.Sprintf("structured=%v/%d+%d", structured, r.off, r.n), func(t *testing.T) {
				req := protocol.Request{Type: protocol.CmdRead, Cookie: uint64(i + 1), Offset: uint64(r.off), Length: r.n}
				c.send(req, nil)
				res, err := c.reply(req)
				if err != nil {
					t.Fatal(err)
				}
				if res.Errno != 0 || !bytes.Equal(res.Data, want(r.off, int(r.n))) {
					t.Fatalf("errno %d, data equal %v", res.Errno, bytes.Equal(res.Data, want(r.off, int(r.n))))
				}
			})
		}
		c.disconnect()
	}
}

// TestMapped checks a file backend's mapping: in bounds it is the file's
// bytes, just written (so in the page cache); out of bounds it is nil.
func TestMapped(t *testing.T) {
	data := pattern(0, 1<<20)
	b := openWritten(t, data)
	for _, r := range []struct{ off, n int64 }{{0, 1 << 20}, {12345, 100000}, {1<<20 - 1, 1}, {1 << 20, 0}} {
		p := b.Mapped(r.off, r.n)
		if p == nil || !bytes.Equal(p, data[r.off:r.off+r.n]) {
			t.Errorf("Mapped(%d, %d): nil %v, equal %v", r.off, r.n, p == nil, bytes.Equal(p, data[r.off:r.off+r.n]))
		}
		if !nowait.Resident(p) {
			t.Logf("Mapped(%d, %d): not resident (evicted?)", r.off, r.n)
		}
	}
	for _, r := range []struct{ off, n int64 }{{-1, 1}, {0, 1<<20 + 1}, {1<<20 + 1, 0}, {1 << 19, -1}} {
		if p := b.Mapped(r.off, r.n); p != nil {
			t.Errorf("Mapped(%d, %d): %d bytes, want nil", r.off, r.n, len(p))
		}
	}
}

// seesReads wraps a backend and must see every read, so it reads
// without waiting itself: the mapping under it must not be used.
type seesReads struct{ Backend }

func (s seesReads) Unwrap() Backend { return s.Backend }
func (s seesReads) ReadAtNoWait(p []byte, off int64) (int, error) {
	return 0, errWouldBlock
}

func TestMappedOnlyFromTheNoWaitReader(t *testing.T) {
	b := openWritten(t, make([]byte, 1<<16))
	if a := abilitiesOf(b); a.mapped == nil {
		t.Error("file backend: not mapped")
	}
	if a := abilitiesOf(seesReads{b}); a.mapped != nil {
		t.Error("a wrapper that must see reads: mapped from the file under it")
	}
}
