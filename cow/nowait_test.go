package cow

import (
	"bytes"
	"errors"
	"sync/atomic"
	"testing"
)

// nowaitBase is a base whose non-blocking reads succeed unless cold is
// set (its pages then count as uncached), counting the calls.
type nowaitBase struct {
	*fileBase
	cold  atomic.Bool
	calls atomic.Int64
}

func (b *nowaitBase) ReadAtNoWait(p []byte, off int64) (int, error) {
	b.calls.Add(1)
	if b.cold.Load() {
		return 0, ErrWouldBlock
	}
	return b.ReadAt(p, off)
}

// TestReadAtNoWait reads base, Data and Zero blocks without waiting, and
// checks that it refuses (ErrWouldBlock) rather than wait: when the base
// is uncached, and while a write holds the blocks' locks.
func TestReadAtNoWait(t *testing.T) {
	tb := newTestBase(t, testSize, testHoles...)
	base := &nowaitBase{fileBase: tb.be}
	ov := openT(t, t.TempDir(), base, Options{})
	defer ov.Close()
	model := append([]byte(nil), tb.content...)
	(&op{kind: 'w', off: 2*bs4k + 100, n: 3000, fill: 7}).apply(t, ov, model)
	(&op{kind: 't', off: 6 * bs4k, n: bs4k}).apply(t, ov, model)

	p := make([]byte, 8*bs4k)
	n, err := ov.ReadAtNoWait(p, 0)
	switch {
	case errors.Is(err, ErrWouldBlock):
		// The data file's page was not cached (or no RWF_NOWAIT here):
		// allowed, but the base must have been asked first.
		t.Logf("read across base, Data and Zero blocks: would block (data file uncached)")
	case err != nil || n != len(p):
		t.Fatalf("ReadAtNoWait = %d, %v", n, err)
	case !bytes.Equal(p, model[:len(p)]):
		t.Fatalf("ReadAtNoWait data: %s", firstDiff(p, model[:len(p)]))
	}
	if base.calls.Load() == 0 {
		t.Errorf("the base's non-blocking read was never used")
	}

	// Base blocks only, base cached: served.
	q := make([]byte, bs4k)
	if n, err := ov.ReadAtNoWait(q, 0); err != nil || n != len(q) || !bytes.Equal(q, model[:bs4k]) {
		t.Fatalf("base block: %d, %v, data equal %v", n, err, bytes.Equal(q, model[:bs4k]))
	}
	// A Zero block needs no I/O at all.
	base.cold.Store(true)
	if n, err := ov.ReadAtNoWait(q, 6*bs4k); err != nil || n != len(q) || !bytes.Equal(q, make([]byte, bs4k)) {
		t.Fatalf("zero block: %d, %v", n, err)
	}
	// An uncached base block: refused, not waited for.
	if _, err := ov.ReadAtNoWait(q, 0); !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("uncached base block: %v, want ErrWouldBlock", err)
	}
	base.cold.Store(false)
	// A write in progress on the last block (the second lock word):
	// refused, not waited for, and the first word's lock let go again.
	ov.locks.lock(16, 16, false)
	_, err = ov.ReadAtNoWait(make([]byte, testSize), 0)
	ov.locks.unlock(16, 16, false)
	if !errors.Is(err, ErrWouldBlock) {
		t.Fatalf("read under a write lock: %v, want ErrWouldBlock", err)
	}
	// And the locks are all free again: a write goes through.
	(&op{kind: 'w', off: 0, n: 10, fill: 3}).apply(t, ov, model)
	if got := readAll(t, ov); !bytes.Equal(got, model) {
		t.Fatalf("overlay content: %s", firstDiff(got, model))
	}
}
