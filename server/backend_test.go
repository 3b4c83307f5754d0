package server

import (
	"bytes"
	"sync/atomic"
	"testing"

	"github.com/nbdboot/nbdboot/protocol"
)

// ableMem is a memBackend with both optional abilities, counting their use.
type ableMem struct {
	*memBackend
	nowaitReads, fuaWrites atomic.Int64
}

func (b *ableMem) ReadAtNoWait(p []byte, off int64) (int, error) {
	b.nowaitReads.Add(1)
	return b.memBackend.ReadAt(p, off)
}

func (b *ableMem) WriteAtFUA(p []byte, off int64) error {
	b.fuaWrites.Add(1)
	_, err := b.memBackend.WriteAt(p, off)
	return err
}

// countingWrapper is a new wrapper the server knows nothing about (as a
// metrics layer would be): it counts the reads and writes that reach it.
type countingWrapper struct {
	Backend
	reads, writes atomic.Int64
}

func (w *countingWrapper) ReadAt(p []byte, off int64) (int, error) {
	w.reads.Add(1)
	return w.Backend.ReadAt(p, off)
}

func (w *countingWrapper) WriteAt(p []byte, off int64) (int, error) {
	w.writes.Add(1)
	return w.Backend.WriteAt(p, off)
}

func (w *countingWrapper) Unwrap() Backend { return w.Backend }

// TestAbilitiesSurviveWrapping serves a writable export whose backend is
// a new wrapper over a backend with non-blocking reads and FUA writes;
// the server adds its fence on top. Both abilities must reach the
// connection: READs are served by the non-blocking read (never by ReadAt,
// which would be the goroutine path), and a FUA WRITE by WriteAtFUA
// (never by WriteAt and a Sync).
func TestAbilitiesSurviveWrapping(t *testing.T) {
	inner := &ableMem{memBackend: newMemBackend(1 << 20)}
	w := &countingWrapper{Backend: inner}
	if a := abilitiesOf(w); a.nowait == nil || a.fua == nil {
		t.Fatalf("abilities of the wrapper: %+v, want both", a)
	}
	tab, err := NewExports(&Export{Name: "w", Backend: w})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, tab, testLimits())
	for _, structured := range []bool{false, true} {
		c := dial(t, ts.addr, "w", structured)
		data := bytes.Repeat([]byte{0xa5}, 4096)
		if r := c.do(protocol.Request{Type: protocol.CmdWrite, Flags: protocol.CmdFlagFUA, Cookie: 1, Offset: 8192, Length: 4096}, data); r.Errno != 0 {
			t.Fatalf("FUA WRITE: errno %d", r.Errno)
		}
		r := c.do(protocol.Request{Type: protocol.CmdRead, Cookie: 2, Offset: 8192, Length: 4096}, nil)
		if r.Errno != 0 || !bytes.Equal(r.Data, data) {
			t.Fatalf("READ after FUA WRITE: errno %d, data equal %v", r.Errno, bytes.Equal(r.Data, data))
		}
		c.disconnect()
	}
	if got := inner.fuaWrites.Load(); got != 2 {
		t.Errorf("WriteAtFUA calls = %d, want 2 (FUA lost under the fence or the wrapper)", got)
	}
	if got := w.writes.Load(); got != 0 {
		t.Errorf("WriteAt calls = %d, want 0: FUA fell back to write and sync", got)
	}
	if got := inner.nowaitReads.Load(); got != 2 {
		t.Errorf("ReadAtNoWait calls = %d, want 2 (the fast read path was lost)", got)
	}
	if got := w.reads.Load(); got != 0 {
		t.Errorf("ReadAt calls = %d, want 0: READs went to a goroutine", got)
	}
}

// TestAbilitiesOf resolves abilities through chains of wrappers, the
// fence included, and finds none where there are none.
func TestAbilitiesOf(t *testing.T) {
	able := &ableMem{memBackend: newMemBackend(4096)}
	plain := newMemBackend(4096)
	f := newFence(testLimits(), slogDiscard())
	fenced, leave := f.enter("id", &countingWrapper{Backend: &countingWrapper{Backend: able}}, func() {})
	defer leave()
	if a := abilitiesOf(fenced); a.nowait != NoWaitReader(able) || a.fua == nil {
		t.Errorf("fenced able backend: %+v, want able's non-blocking read and a FUA write", a)
	}
	fencedPlain, leave2 := f.enter("id2", &countingWrapper{Backend: plain}, func() {})
	defer leave2()
	if a := abilitiesOf(fencedPlain); a.nowait != nil {
		t.Errorf("fenced plain backend: non-blocking read %v, want none", a.nowait)
	}
	if a := abilitiesOf(&overlayBackend{}); a.nowait == nil {
		t.Errorf("copy-on-write overlay: no non-blocking read, so no fast READ path")
	}
	if a := abilitiesOf(plain); a != (abilities{}) {
		t.Errorf("plain backend: %+v, want none", a)
	}
}
