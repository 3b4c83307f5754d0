package cow

import (
	"bytes"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/nbdboot/nbdboot/internal/nowait"
	"github.com/nbdboot/nbdboot/protocol"
)

// mappedBase is a test base with the server's mapping of its file.
type mappedBase struct {
	*fileBase
	m []byte
}

func (b mappedBase) Mapped(off, n int64) []byte { return b.m[off : off+n : off+n] }

// newMappedBase maps base's file and reads it whole, so that its pages,
// holes included, are in the page cache.
func newMappedBase(t testing.TB, base *testBase) mappedBase {
	t.Helper()
	m := nowait.Map(int(base.be.Fd()), base.be.size)
	if m == nil {
		t.Fatal("cannot map the base")
	}
	t.Cleanup(func() { nowait.Unmap(m) })
	if err := readFull(base.be, make([]byte, base.be.size), 0); err != nil {
		t.Fatal(err)
	}
	return mappedBase{base.be, m}
}

// lent concatenates what Lend lent (a test may read the mappings).
func lent(segs [][]byte) []byte { return bytes.Join(segs, nil) }

// TestLend lends ranges of an overlay whose blocks are Base (some base
// holes), Data and Zero, and checks they read as ReadAt reads them: all
// bytes (no exts), or the data parts of Extents' runs; a range of Base
// blocks only is lent without holding anything.
func TestLend(t *testing.T) {
	const size = 64 * bs4k
	base := newTestBase(t, size, byteRange{8 * bs4k, 8 * bs4k})
	ov := openT(t, t.TempDir(), newMappedBase(t, base), Options{})
	defer ov.Close()
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		off, n := r.Int64N(size/2), r.Int64N(3*bs4k)+1
		if r.IntN(4) == 0 {
			if err := ov.Zero(off, n, false, false); err != nil {
				t.Fatal(err)
			}
		} else if _, err := ov.WriteAt(bytes.Repeat([]byte{byte(r.IntN(255) + 1)}, int(n)), off); err != nil {
			t.Fatal(err)
		}
	}
	want := readAll(t, ov)
	lends := 0
	for _, c := range []struct{ off, n int64 }{{0, size}, {100, size / 2}, {size / 2, size / 2}, {size/2 + 1, 5 * bs4k}, {12345, 100000}} {
		exts, err := ov.Extents(c.off, c.n, nowait.MaxRange)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range [][]protocol.Extent{nil, exts} {
			segs, held, ok := ov.Lend(nil, c.off, c.n, x)
			if !ok {
				t.Logf("Lend(%d, %d): not lent (pages evicted?)", c.off, c.n)
				continue
			}
			lends++
			got := lent(segs)
			if held {
				ov.Unlend(c.off, c.n)
			}
			if int64(len(got)) != c.n {
				t.Fatalf("Lend(%d, %d): %d bytes", c.off, c.n, len(got))
			}
			pos := int64(0)
			for _, e := range x {
				if e.Zero() { // not sent: only its length matters
					copy(got[pos:], want[c.off+pos:c.off+pos+int64(e.Length)])
				}
				pos += int64(e.Length)
			}
			if !bytes.Equal(got, want[c.off:c.off+c.n]) {
				t.Errorf("Lend(%d, %d, %d runs): not what ReadAt reads", c.off, c.n, len(x))
			}
			if wantHeld := !ov.states.allBase(c.off>>ov.shift, (c.off+c.n-1)>>ov.shift); held != wantHeld {
				t.Errorf("Lend(%d, %d): held %v, want %v", c.off, c.n, held, wantHeld)
			}
		}
	}
	if lends == 0 {
		t.Fatal("nothing lent")
	}
	if _, _, ok := ov.Lend(nil, size-10, 11, nil); ok {
		t.Error("Lend past the end: ok")
	}
	if _, _, ok := ov.Lend(nil, 0, nowait.MaxRange+bs4k, nil); ok {
		t.Error("Lend of more than nowait.MaxRange: ok")
	}
}

// TestLendAtomic lends a range while writers rewrite it whole, each
// write with one byte value, or trim it: a lent range must read as one
// write left it, never a mix, for as long as it is held.
func TestLendAtomic(t *testing.T) {
	const size, span = 256 * bs4k, 64 * bs4k
	base := newTestBase(t, size)
	ov := openT(t, t.TempDir(), newMappedBase(t, base), Options{})
	defer ov.Close()
	if _, err := ov.WriteAt(make([]byte, size), 0); err != nil { // all Data
		t.Fatal(err)
	}
	const at = 3*bs4k + 100 // not aligned to blocks or words
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 9))
			buf := make([]byte, span)
			for {
				select {
				case <-done:
					return
				default:
				}
				var err error
				if r.IntN(8) == 0 {
					err = ov.Zero(at, span, r.IntN(2) == 0, false)
				} else {
					v := byte(r.IntN(255) + 1)
					for i := range buf {
						buf[i] = v
					}
					_, err = ov.WriteAt(buf, at)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	lends := 0
	for range 2000 {
		segs, held, ok := ov.Lend(nil, at, span, nil)
		if !ok {
			continue
		}
		lends++
		got := lent(segs)
		again := lent(segs) // still held: unchanged
		if held {
			ov.Unlend(at, span)
		}
		if !held {
			t.Fatal("a range of Data blocks lent without holding it")
		}
		if len(got) != span || bytes.Count(got, got[:1]) != span {
			t.Fatalf("lent range mixes writes: %d bytes, %d of them byte 0's value %d", len(got), bytes.Count(got, got[:1]), got[0])
		}
		if !bytes.Equal(got, again) {
			t.Fatal("lent range changed while held")
		}
	}
	close(done)
	wg.Wait()
	if lends == 0 {
		t.Fatal("nothing lent")
	}
}
