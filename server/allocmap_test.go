package server

import (
	"bytes"
	"reflect"
	"sync"
	"testing"

	"github.com/nbdboot/nbdboot/protocol"
)

// TestAllocMap follows a sparse file's map: unknown until a request
// learns it, then answered from memory; a write marks its blocks at once;
// a punch clears the blocks wholly inside it.
func TestAllocMap(t *testing.T) {
	b, _ := newTestFile(t, 4*mib, mib, 3*mib) // data: [1M, 1M+4K), [3M, 3M+4K)
	m := b.alloc
	if _, ok := b.ExtentsNoWait(nil, 0, 4*mib, 100); ok {
		t.Fatal("ExtentsNoWait answered before the map learnt the file")
	}
	want := []protocol.Extent{{Length: mib, Flags: hole}, {Length: 4096}, {Length: 2*mib - 4096, Flags: hole},
		{Length: 4096}, {Length: mib - 4096, Flags: hole}}
	if got, err := b.Extents(0, 4*mib, 100); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Extents = %v, %v; want %v", got, err, want)
	}
	for _, tt := range []struct {
		name   string
		off, n int64
		max    int
		want   []protocol.Extent
	}{
		{"whole, from memory", 0, 4 * mib, 100, want},
		{"max 2", 0, 4 * mib, 2, want[:2]},
		{"inside one data block", mib + 100, 50, 10, []protocol.Extent{{Length: 50}}},
		{"inside a hole, unaligned", 2*mib + 1, 4095, 10, []protocol.Extent{{Length: 4095, Flags: hole}}},
		{"across a data block's end", mib + 2048, 4096, 10, []protocol.Extent{{Length: 2048}, {Length: 2048, Flags: hole}}},
	} {
		got, ok := b.ExtentsNoWait(nil, tt.off, tt.n, tt.max)
		if !ok || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: ExtentsNoWait = %v, %v; want %v", tt.name, got, ok, tt.want)
		}
	}
	// A write into the hole: marked before it lands, unaligned edges
	// marking their whole blocks.
	if _, err := b.WriteAt(make([]byte, 5000), 2*mib+100); err != nil {
		t.Fatal(err)
	}
	got, _ := b.ExtentsNoWait(nil, 2*mib, 3*4096, 10)
	if w := []protocol.Extent{{Length: 2 * 4096}, {Length: 4096, Flags: hole}}; !reflect.DeepEqual(got, w) {
		t.Errorf("after a write: %v, want %v", got, w)
	}
	// A punch clears only the blocks wholly inside it.
	if err := b.Trim(2*mib+100, 2*4096); err != nil {
		t.Fatal(err)
	}
	got, _ = b.ExtentsNoWait(nil, 2*mib, 3*4096, 10)
	if w := []protocol.Extent{{Length: 4096}, {Length: 2 * 4096, Flags: hole}}; !reflect.DeepEqual(got, w) {
		t.Errorf("after a punch: %v, want %v", got, w)
	}
	// A punch while a write is in flight clears nothing.
	m.beginWrite(3*mib+8192, 1)
	tok := m.beforePunch()
	m.endWrite()
	m.afterPunch(mib, mib, tok)
	if got, _ := b.ExtentsNoWait(nil, mib, 4096, 10); !reflect.DeepEqual(got, []protocol.Extent{{Length: 4096}}) {
		t.Errorf("punch racing a write cleared blocks: %v", got)
	}
}

// TestAllocMapLastBlock: a file whose size is not a multiple of the block
// size; its short last block is marked, reported and punched.
func TestAllocMapLastBlock(t *testing.T) {
	m := newAllocMap(3*4096 + 100)
	for w := range m.known {
		m.known[w].Store(^uint64(0)) // nothing to learn
	}
	m.beginWrite(3*4096+50, 10)
	m.endWrite()
	got, _ := m.extentsNoWait(nil, 2*4096, 4096+100, 10)
	if w := []protocol.Extent{{Length: 4096, Flags: hole}, {Length: 100}}; !reflect.DeepEqual(got, w) {
		t.Errorf("short last block: %v, want %v", got, w)
	}
	m.afterPunch(3*4096, 100, m.beforePunch())
	got, _ = m.extentsNoWait(nil, 0, 3*4096+100, 10)
	if w := []protocol.Extent{{Length: 3*4096 + 100, Flags: hole}}; !reflect.DeepEqual(got, w) {
		t.Errorf("punched short last block: %v, want %v", got, w)
	}
}

// TestAllocMapConcurrent writes into a sparse file while other
// goroutines learn and query its map: a block written and acknowledged
// is never reported as a hole afterwards.
func TestAllocMapConcurrent(t *testing.T) {
	const size = 8 * mib
	b, _ := newTestFile(t, size)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 64 {
				off := int64((i*4+g)*32*1024) % size
				if _, err := b.WriteAt([]byte{1}, off); err != nil {
					t.Error(err)
					return
				}
				exts, err := b.Extents(off, 4096, 4)
				if err != nil || len(exts) == 0 || exts[0].Zero() {
					t.Errorf("block at %d written, then reported %v, %v", off, exts, err)
					return
				}
				if _, err := b.Extents(0, size, 1024); err != nil { // learn and read the rest
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestSparseReadInline reads across data and holes of a sparse file
// twice with structured replies: the first READ learns the map on a
// goroutine, the second is split from memory and served on the read
// loop (never through ReadAt); both reply with the same chunks.
func TestSparseReadInline(t *testing.T) {
	fb, _ := newTestFile(t, 4*mib, mib)
	if _, err := fb.ReadAtNoWait(make([]byte, 4096), mib); err != nil {
		t.Skipf("no non-blocking read of this file here: %v", err)
	}
	w := &countingWrapper{Backend: fb}
	tab, err := NewExports(&Export{Name: "s", Backend: w})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, tab, testLimits())
	c := dial(t, ts.addr, "s", true)
	want := make([]byte, 64<<10)
	copy(want[32<<10:], pattern(mib, 4096))
	hole, data := protocol.ChunkOffsetHole, protocol.ChunkOffsetData
	for i := range 2 {
		reads := w.reads.Load()
		req := protocol.Request{Type: protocol.CmdRead, Cookie: uint64(i + 1), Offset: mib - 32<<10, Length: 64 << 10}
		r := c.do(req, nil)
		var types []uint16
		for _, ch := range r.Chunks {
			types = append(types, ch.Type)
		}
		if r.Errno != 0 || !bytes.Equal(r.Data, want) || !equalTypes(types, []uint16{hole, data, hole}) {
			t.Errorf("READ %d: errno %d, data ok %v, chunk types %v", i+1, r.Errno, bytes.Equal(r.Data, want), types)
		}
		if i == 1 && w.reads.Load() != reads {
			t.Errorf("second READ went through ReadAt: not served from the map on the read loop")
		}
	}
	c.disconnect()
}

// TestCoverRead: a READ's runs cover it exactly, holes too short to save
// bytes are sent as data, and no hole left means one data run (nil).
func TestCoverRead(t *testing.T) {
	req := protocol.Request{Type: protocol.CmdRead, Length: 8192}
	for _, tt := range []struct {
		name string
		in   []protocol.Extent
		want []protocol.Extent
	}{
		{"all data", []protocol.Extent{{Length: 8192}}, nil},
		{"short: the rest is data", []protocol.Extent{{Length: 4096, Flags: hole}}, []protocol.Extent{{Length: 4096, Flags: hole}, {Length: 4096}}},
		{"a tiny hole is data", []protocol.Extent{{Length: 4000}, {Length: 63, Flags: hole}, {Length: 4129}}, nil},
		{"a 64-byte hole is a hole", []protocol.Extent{{Length: 4000}, {Length: 64, Flags: hole}, {Length: 4128}},
			[]protocol.Extent{{Length: 4000}, {Length: 64, Flags: hole}, {Length: 4128}}},
		{"tiny hole merged, big one kept", []protocol.Extent{{Length: 10, Flags: hole}, {Length: 90}, {Length: 8092, Flags: hole}},
			[]protocol.Extent{{Length: 100}, {Length: 8092, Flags: hole}}},
	} {
		if got := coverRead(req, append([]protocol.Extent(nil), tt.in...)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
