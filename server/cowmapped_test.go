package server

import (
	"bytes"
	"testing"

	"github.com/nbdboot/nbdboot/cow"
	"github.com/nbdboot/nbdboot/protocol"
)

// TestCOWMapped: an overlay lends large READs the base's mapping where
// its blocks are all Base, and not where the client wrote.
func TestCOWMapped(t *testing.T) {
	_, base, _ := cowServer(t, COWEphemeral)
	be, err := OpenFile(base, true)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	ov, err := cow.Open(t.TempDir(), cowBase{be, abilitiesOf(be)}, cow.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ov.Close()
	a := abilitiesOf(&overlayBackend{Overlay: ov})
	if a.mapped == nil {
		t.Fatal("overlay backend: no mapping")
	}
	if p := a.mapped.Mapped(0, 256<<10); !bytes.Equal(p, pattern(0, 256<<10)) {
		t.Fatalf("fresh overlay: mapping nil %v or not the base", p == nil)
	}
	if _, err := ov.WriteAt([]byte{1}, 100<<10); err != nil {
		t.Fatal(err)
	}
	if p := a.mapped.Mapped(0, 256<<10); p != nil {
		t.Error("range with a written block: lent from the base's mapping")
	}
	if p := a.mapped.Mapped(256<<10, 256<<10); !bytes.Equal(p, pattern(256<<10, 256<<10)) {
		t.Errorf("range of Base blocks after the write: mapping nil %v or not the base", p == nil)
	}
	for _, r := range [][2]int64{{-1, 10}, {4 * mib, 1}, {0, 0}} {
		if p := a.mapped.Mapped(r[0], r[1]); p != nil {
			t.Errorf("Mapped(%d, %d): %d bytes, want nil", r[0], r[1], len(p))
		}
	}
}

// TestCOWLargeRead reads large ranges of a copy-on-write export, before
// and after a write into them: the base's bytes (sent from its mapping
// once cached), then the client's own.
func TestCOWLargeRead(t *testing.T) {
	ts, _, _ := cowServer(t, COWEphemeral)
	c := dial(t, ts.addr, "lab/pc1", true)
	defer c.disconnect()
	want := append(pattern(0, mib), make([]byte, mib)...)
	read := func(cookie uint64, off int64, n uint32) {
		t.Helper()
		r := c.do(protocol.Request{Type: protocol.CmdRead, Cookie: cookie, Offset: uint64(off), Length: n}, nil)
		if r.Errno != 0 || !bytes.Equal(r.Data, want[off:off+int64(n)]) {
			t.Fatalf("READ %d+%d: errno %d, data ok %v", off, n, r.Errno, bytes.Equal(r.Data, want[off:off+int64(n)]))
		}
	}
	for i := range 2 { // the second time from the page cache
		read(uint64(1+i), 0, 256<<10)
		read(uint64(3+i), 896<<10, 256<<10) // data, then the hole
	}
	w := bytes.Repeat([]byte{0xab}, 5000)
	if r := c.do(protocol.Request{Type: protocol.CmdWrite, Cookie: 5, Offset: 100 << 10, Length: 5000}, w); r.Errno != 0 {
		t.Fatalf("WRITE: errno %d", r.Errno)
	}
	copy(want[100<<10:], w)
	read(6, 0, 256<<10)
	read(7, 12345, 300000)
}
