package cow

import (
	"errors"
	"github.com/nbdboot/nbdboot/protocol"
	"math/rand/v2"
	"slices"
	"testing"
)

const (
	bs4k = 4096
	// testSize is 16 whole blocks and a short 17th of 1000 bytes.
	testSize = 16*bs4k + 1000
)

// testHoles are the base's unallocated ranges: blocks 4..7, and a
// range inside blocks 9 and 10 (allocated around it, so not a
// filesystem hole, but reading zeroes).
var testHoles = []byteRange{{4 * bs4k, 4 * bs4k}, {40000, 1000}}

// op is one request against both the overlay and the model.
type op struct {
	kind  byte // 'w' write, 't' trim, 'z' write zeroes
	off   int64
	n     int64
	fill  byte
	noHol bool
}

func w(off, n int64, fill byte) op { return op{kind: 'w', off: off, n: n, fill: fill} }
func tr(off, n int64) op           { return op{kind: 't', off: off, n: n} }
func z(off, n int64) op            { return op{kind: 'z', off: off, n: n} }

// apply runs o against the overlay and the model (the expected image).
func (p op) apply(t testing.TB, ov *Overlay, model []byte) {
	t.Helper()
	var err error
	switch p.kind {
	case 'w':
		buf := make([]byte, p.n)
		for i := range buf {
			buf[i] = p.fill
		}
		var n int
		n, err = ov.WriteAt(buf, p.off)
		if err == nil && n != len(buf) {
			t.Fatalf("write %d bytes at %d: wrote %d", p.n, p.off, n)
		}
	case 't':
		err = ov.Trim(p.off, p.n)
	case 'z':
		err = ov.Zero(p.off, p.n, p.noHol, false)
	}
	if err != nil {
		t.Fatalf("%c %d+%d: %v", p.kind, p.off, p.n, err)
	}
	p.applyModel(model)
}

// applyModel applies p to the expected image of a 4 KiB-block overlay.
func (p op) applyModel(model []byte) {
	switch p.kind {
	case 'w':
		for i := range p.n {
			model[p.off+i] = p.fill
		}
	case 't':
		// Only whole blocks are trimmed, and they read as zeroes.
		size := int64(len(model))
		fb, le := (p.off+bs4k-1)/bs4k, (p.off+p.n)/bs4k
		if p.off+p.n == size {
			le = (size + bs4k - 1) / bs4k
		}
		for b := fb; b < le; b++ {
			clear(model[b*bs4k : min((b+1)*bs4k, size)])
		}
	case 'z':
		clear(model[p.off : p.off+p.n])
	}
}

// checkImage compares the whole image and random sub-ranges.
func checkImage(t testing.TB, ov *Overlay, model []byte, what string) {
	t.Helper()
	if d := firstDiff(readAll(t, ov), model); d != "" {
		t.Fatalf("%s: whole image: %s", what, d)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		off := r.Int64N(int64(len(model)))
		n := r.Int64N(int64(len(model))-off) + 1
		got := make([]byte, n)
		if _, err := ov.ReadAt(got, off); err != nil {
			t.Fatalf("%s: read %d+%d: %v", what, off, n, err)
		}
		if d := firstDiff(got, model[off:off+n]); d != "" {
			t.Fatalf("%s: read %d+%d: %s", what, off, n, d)
		}
	}
	checkExtentsAgree(t, ov, model, what)
}

// checkExtentsAgree checks that Extents covers the image and that every
// hole reads as zeroes.
func checkExtentsAgree(t testing.TB, ov *Overlay, model []byte, what string) {
	t.Helper()
	exts, err := ov.Extents(0, ov.Size(), 1<<20)
	if err != nil {
		t.Fatalf("%s: extents: %v", what, err)
	}
	pos := int64(0)
	for _, e := range exts {
		n := int64(e.Length)
		if n <= 0 {
			t.Fatalf("%s: extent at %d has length %d", what, pos, n)
		}
		if e.Zero() {
			for i := pos; i < pos+n; i++ {
				if model[i] != 0 {
					t.Fatalf("%s: extent [%d,%d) is a hole but byte %d is %#x", what, pos, pos+n, i, model[i])
				}
			}
		}
		pos += n
	}
	if pos != ov.Size() {
		t.Fatalf("%s: extents cover %d bytes, want %d: %+v", what, pos, ov.Size(), exts)
	}
}

func TestReadWriteTable(t *testing.T) {
	last := int64(16 * bs4k) // the short last block
	cases := []struct {
		name string
		ops  []op
	}{
		{"fresh reads the base", nil},
		{"aligned block write over base", []op{w(bs4k, bs4k, 0xaa)}},
		{"partial write into a base block", []op{w(100, 50, 0xbb)}},
		{"unaligned write spanning blocks", []op{w(4000, 9000, 0xcc)}},
		{"partial write into a base hole", []op{w(17000, 10, 0xdd)}},
		{"partial write into the short last block", []op{w(last+500, 400, 0xee)}},
		{"write to the very end", []op{w(last+999, 1, 0xef)}},
		{"whole short last block", []op{w(last, 1000, 0x12)}},
		{"overwrite a data block partially", []op{w(0, bs4k, 1), w(10, 10, 2)}},
		{"trim whole blocks", []op{tr(2*bs4k, 2*bs4k)}},
		{"trim unaligned keeps the edges", []op{tr(100, 10000)}},
		{"trim inside one block does nothing", []op{tr(100, 200)}},
		{"trim to the end takes the short block", []op{tr(15*bs4k, bs4k+1000)}},
		{"zero unaligned", []op{z(100, 10000)}},
		{"zero inside one base block", []op{z(5000, 100)}},
		{"zero across two partial blocks", []op{z(4000, 200)}},
		{"zero inside a data block", []op{w(0, 2*bs4k, 3), z(10, 5000)}},
		{"zero inside a zero block", []op{tr(0, bs4k), z(10, 20)}},
		{"zero to the end", []op{z(60000, testSize-60000)}},
		{"zero no-hole", []op{{kind: 'z', off: 3 * bs4k, n: 2 * bs4k, noHol: true}}},
		{"write after trim", []op{tr(0, 4*bs4k), w(10, 10, 0x11)}},
		{"write after zero over a hole", []op{z(4*bs4k, 4*bs4k), w(5*bs4k+1, 3, 0x22)}},
		{"zero-length requests", []op{w(0, 0, 1), z(0, 0), tr(0, 0)}},
		{"everything", []op{w(0, testSize, 0x33), tr(0, testSize), w(1, 1, 0x44), z(2*bs4k-1, 2)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := newTestBase(t, testSize, testHoles...)
			before := base.sum(t)
			dir := t.TempDir()
			ov := openT(t, dir, base.be, Options{})
			model := append([]byte(nil), base.content...)
			for i, p := range c.ops {
				p.apply(t, ov, model)
				checkImage(t, ov, model, "after op "+string(rune('0'+i)))
			}
			if err := ov.Close(); err != nil {
				t.Fatal(err)
			}
			ov = openT(t, dir, base.be, Options{})
			checkImage(t, ov, model, "reopened")
			if err := ov.Close(); err != nil {
				t.Fatal(err)
			}
			if base.sum(t) != before {
				t.Fatal("the base image changed")
			}
		})
	}
}

func TestExtents(t *testing.T) {
	base := newTestBase(t, testSize, testHoles...)
	ov := openT(t, t.TempDir(), noWaitExtents{base.be}, Options{})
	defer ov.Close()
	type ext = protocol.Extent
	const hole = protocol.StateHoleZero
	rest := uint32(testSize - 8*bs4k)
	steps := []struct {
		name   string
		op     *op
		off, n int64
		max    int
		want   []ext
	}{
		{"fresh: the base's holes", nil, 0, testSize, 10,
			[]ext{{Length: 4 * bs4k}, {Length: 4 * bs4k, Flags: hole}, {Length: rest}}},
		{"a write into the hole", &op{kind: 'w', off: 5*bs4k + 10, n: 1, fill: 9}, 0, testSize, 10,
			[]ext{{Length: 4 * bs4k}, {Length: bs4k, Flags: hole}, {Length: bs4k}, {Length: 2 * bs4k, Flags: hole}, {Length: rest}}},
		{"a trim at the start", &op{kind: 't', off: 0, n: bs4k}, 0, testSize, 10,
			[]ext{{Length: bs4k, Flags: hole}, {Length: 3 * bs4k}, {Length: bs4k, Flags: hole}, {Length: bs4k}, {Length: 2 * bs4k, Flags: hole}, {Length: rest}}},
		{"max 2 covers less", nil, 0, testSize, 2,
			[]ext{{Length: bs4k, Flags: hole}, {Length: 3 * bs4k}}},
		{"unaligned range inside a zero block", nil, 100, 50, 10,
			[]ext{{Length: 50, Flags: hole}}},
		{"range across the base hole", nil, 3*bs4k + 1, bs4k + 10, 10,
			[]ext{{Length: bs4k - 1}, {Length: 11, Flags: hole}}},
		{"no-hole zeroing allocates", &op{kind: 'z', off: 4 * bs4k, n: bs4k, noHol: true}, 0, 8 * bs4k, 10,
			[]ext{{Length: bs4k, Flags: hole}, {Length: 3*bs4k + 2*bs4k}, {Length: 2 * bs4k, Flags: hole}}},
		{"zeroing the tail merges with nothing", &op{kind: 'z', off: 8 * bs4k, n: testSize - 8*bs4k}, 6 * bs4k, testSize - 6*bs4k, 10,
			[]ext{{Length: testSize - 6*bs4k, Flags: hole}}},
	}
	model := append([]byte(nil), base.content...)
	for _, s := range steps {
		if s.op != nil {
			s.op.apply(t, ov, model)
		}
		got, err := ov.Extents(s.off, s.n, s.max)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if len(got) != len(s.want) {
			t.Fatalf("%s: got %+v, want %+v", s.name, got, s.want)
		}
		for i := range got {
			if got[i] != s.want[i] {
				t.Fatalf("%s: got %+v, want %+v", s.name, got, s.want)
			}
		}
		// From memory, appended after what dst holds, into its spare
		// room or not: the same runs, dst's own left alone.
		for _, spare := range []int{0, 1, 64} {
			dst := append(make([]ext, 0, 1+spare), ext{Length: 7, Flags: hole})
			got, ok := ov.ExtentsNoWait(dst, s.off, s.n, s.max)
			if !ok || len(got) != 1+len(s.want) || got[0] != (ext{Length: 7, Flags: hole}) || !slices.Equal(got[1:], s.want) {
				t.Fatalf("%s: ExtentsNoWait with %d spare: %+v, %v; want [{7 hole}] + %+v", s.name, spare, got, ok, s.want)
			}
		}
	}
}

// noWaitExtents gives a base the server's allocation from memory.
type noWaitExtents struct{ *fileBase }

func (b noWaitExtents) ExtentsNoWait(dst []protocol.Extent, off, length int64, max int) ([]protocol.Extent, bool) {
	exts, err := b.Extents(off, length, max)
	return append(dst, exts...), err == nil
}

func TestOutOfRange(t *testing.T) {
	base := newTestBase(t, testSize)
	ov := openT(t, t.TempDir(), base.be, Options{})
	defer ov.Close()
	if _, err := ov.WriteAt(make([]byte, 2), testSize-1); err == nil {
		t.Error("write past the end succeeded")
	}
	if _, err := ov.ReadAt(make([]byte, 1), -1); err == nil {
		t.Error("read at -1 succeeded")
	}
	if err := ov.Zero(testSize, 1, false, false); err == nil {
		t.Error("zero past the end succeeded")
	}
	if err := ov.Trim(0, testSize+1); err == nil {
		t.Error("trim past the end succeeded")
	}
	if _, err := ov.Extents(1, testSize, 1); err == nil {
		t.Error("extents past the end succeeded")
	}
}

func TestOptions(t *testing.T) {
	base := newTestBase(t, testSize)
	for _, bad := range []Options{{BlockSize: 1000}, {BlockSize: 256}, {BlockSize: 2 << 20}, {Quota: -1}, {Quota: 100}} {
		if o, err := Open(t.TempDir(), base.be, bad); err == nil {
			o.Close()
			t.Errorf("Open with %+v succeeded", bad)
		}
	}
	dir := t.TempDir()
	ov := openT(t, dir, base.be, Options{BlockSize: 512})
	if ov.BlockSize() != 512 {
		t.Fatalf("block size %d", ov.BlockSize())
	}
	model := append([]byte(nil), base.content...)
	w(700, 100, 5).apply(t, ov, model)
	checkImage(t, ov, model, "512-byte blocks")
	if got := ov.Allocated(); got != 512 {
		t.Errorf("allocated %d, want 512", got)
	}
	ov.Close()
	if o, err := Open(dir, base.be, Options{BlockSize: 4096}); err == nil {
		o.Close()
		t.Fatal("reopening with another block size succeeded")
	}
	small := newTestBase(t, testSize-bs4k)
	if o, err := Open(dir, small.be, Options{BlockSize: 512}); err == nil {
		o.Close()
		t.Fatal("reopening over a base of another size succeeded")
	}
}

func TestQuota(t *testing.T) {
	base := newTestBase(t, testSize)
	dir := t.TempDir()
	ov := openT(t, dir, base.be, Options{Quota: 3 * bs4k})
	defer ov.Close()
	model := append([]byte(nil), base.content...)
	w(0, 2*bs4k, 1).apply(t, ov, model)
	mustQuota := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrQuota) {
			t.Fatalf("%s: got %v, want ErrQuota", what, err)
		}
		checkImage(t, ov, model, what)
		if got := ov.Allocated(); got != 2*bs4k {
			t.Fatalf("%s: allocated %d, want %d", what, got, 2*bs4k)
		}
	}
	// Two more blocks, one partial at each end: all or nothing.
	_, err := ov.WriteAt(make([]byte, bs4k), 2*bs4k+10)
	mustQuota("write of two new blocks", err)
	_, err = ov.WriteAt(make([]byte, 3*bs4k), bs4k)
	mustQuota("write over one old and two new blocks", err)
	// Rewriting Data blocks needs no quota.
	w(100, 2*bs4k-200, 2).apply(t, ov, model)
	w(2*bs4k, 10, 3).apply(t, ov, model) // the third block
	_, err = ov.WriteAt([]byte{1}, 5*bs4k)
	if !errors.Is(err, ErrQuota) {
		t.Fatalf("fourth block: %v", err)
	}
	// Zeroing partial base blocks needs quota too, whole blocks none.
	if err := ov.Zero(5*bs4k+1, 10, false, false); !errors.Is(err, ErrQuota) {
		t.Fatalf("zero inside a base block: %v", err)
	}
	z(6*bs4k, 4*bs4k).apply(t, ov, model)
	// Provisioned zeroes count.
	if err := ov.Zero(6*bs4k, 2*bs4k, true, false); !errors.Is(err, ErrQuota) {
		t.Fatalf("no-hole zero of two blocks: %v", err)
	}
	// Trimming frees.
	tr(0, bs4k).apply(t, ov, model)
	if got := ov.Allocated(); got != 2*bs4k {
		t.Fatalf("after trim: allocated %d", got)
	}
	w(5*bs4k, 1, 4).apply(t, ov, model)
	checkImage(t, ov, model, "end")
}
