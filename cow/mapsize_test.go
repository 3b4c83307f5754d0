package cow

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
)

// hugeBase is a sparse 64 GiB base file: its flat state map would be
// 4 MiB (2 bits per 4 KiB block).
func hugeBase(t *testing.T) *fileBase {
	t.Helper()
	const size = 64 << 30
	path := filepath.Join(t.TempDir(), "huge.img")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Skipf("no sparse 64 GiB file here: %v", err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &fileBase{File: f, size: size}
}

const flatMapBytes = (64 << 30) / bs4k / 4 // 4 MiB

// TestMapMemoryProportional: overlays of a 64 GiB base that wrote one
// block each hold a map of a few KiB in memory and on disk, not 4 MiB,
// before and after a reopen.
func TestMapMemoryProportional(t *testing.T) {
	base := hugeBase(t)
	const n = 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ovs := make([]*Overlay, n)
	dirs := make([]string, n)
	blk := bytes.Repeat([]byte{0xab}, bs4k)
	for i := range ovs {
		dirs[i] = t.TempDir()
		ovs[i] = openT(t, dirs[i], base, Options{})
		off := base.size - int64(i+1)*(1<<30) // one block, a GiB apart
		if _, err := ovs[i].WriteAt(blk, off); err != nil {
			t.Fatal(err)
		}
		if err := ovs[i].Sync(); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	// Each overlay: an 8 KiB chunk table and one 4 KiB chunk, besides
	// its buffers; flat maps alone would take n*4 MiB.
	if d := int64(after.HeapAlloc) - int64(before.HeapAlloc); d > n*flatMapBytes/8 {
		t.Errorf("%d overlays that wrote one block take %d bytes of heap, flat maps %d", n, d, n*flatMapBytes)
	}
	for i, o := range ovs {
		checkMapSize(t, o, dirs[i], 16<<10, 48+8+chunkBytes)
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
	}
	o := openT(t, dirs[0], base, Options{})
	defer o.Close()
	checkMapSize(t, o, dirs[0], 16<<10, 48+8+chunkBytes)
	got := make([]byte, 2*bs4k)
	if _, err := o.ReadAt(got, base.size-(1<<30)-bs4k); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[bs4k:], blk) || !allZero(got[:bs4k]) {
		t.Fatal("reopened overlay lost its block")
	}
}

// checkMapSize checks the map's memory and on-disk size against bounds.
func checkMapSize(t *testing.T, o *Overlay, dir string, maxMem, maxFile int64) {
	t.Helper()
	if m := o.states.memBytes(); m > maxMem {
		t.Errorf("%s: map holds %d bytes of memory, want at most %d (flat: %d)", dir, m, maxMem, flatMapBytes)
	}
	st, err := os.Stat(filepath.Join(dir, mapName))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > maxFile {
		t.Errorf("%s: map file has %d bytes, want at most %d (flat: %d)", dir, st.Size(), maxFile, flatMapBytes)
	}
}

// TestMapTrimWholeDisk: a TRIM of a whole 64 GiB overlay (blkdiscard)
// makes every chunk Zero without allocating them; a write into it then
// costs one chunk; all of it survives a reopen.
func TestMapTrimWholeDisk(t *testing.T) {
	base := hugeBase(t)
	dir := t.TempDir()
	o := openT(t, dir, base, Options{})
	blk := bytes.Repeat([]byte{0xcd}, bs4k)
	if _, err := o.WriteAt(blk, 5*bs4k); err != nil {
		t.Fatal(err)
	}
	if err := o.Trim(0, base.size); err != nil {
		t.Fatal(err)
	}
	if m := o.states.memBytes(); m > 16<<10 || o.states.private.Load() != 0 || o.Allocated() != 0 {
		t.Fatalf("after a whole-disk trim: %d bytes of map, %d private chunks, %d allocated", m, o.states.private.Load(), o.Allocated())
	}
	if _, err := o.WriteAt(blk[:100], 7*bs4k+50); err != nil { // read-modify-write of a Zero block
		t.Fatal(err)
	}
	if err := o.Sync(); err != nil {
		t.Fatal(err)
	}
	// 1024 chunks: 1023 fill entries and one of words.
	checkMapSize(t, o, dir, 16<<10, 48+1024*8+chunkBytes)
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = openT(t, dir, base, Options{})
	defer o.Close()
	checkMapSize(t, o, dir, 16<<10, 48+1024*8+chunkBytes)
	got := make([]byte, 3*bs4k)
	if _, err := o.ReadAt(got, 5*bs4k); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 3*bs4k)
	copy(want[2*bs4k+50:], blk[:100])
	if !bytes.Equal(got, want) {
		t.Fatal("blocks 5-7 after trim, write and reopen: wrong content")
	}
	if s, n := o.states.run(8, o.blocks); s != StateZero || n != o.blocks-8 {
		t.Fatalf("blocks from 8: %v for %d blocks, want Zero for %d", s, n, o.blocks-8)
	}
	if o.Allocated() != bs4k {
		t.Fatalf("allocated %d, want one block", o.Allocated())
	}
}

// TestOpenV1Overlay opens an overlay saved with the version 1 map (made
// before version 2 by the code of the time): 9 blocks of 512 bytes over
// a base of 4500 bytes; blocks 1-2 written 0xd1, 4-5 trimmed, then after
// the first map, block 8 written ee ef at byte 4400 and block 3 zeroed
// with NO_HOLE, both in the journal.
func TestOpenV1Overlay(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{mapName, journalName, dataName} {
		b, err := os.ReadFile(filepath.Join("testdata", "v1overlay", n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	content := make([]byte, 4500)
	for i := range content {
		content[i] = byte(i*7%251 + 1)
	}
	want := append([]byte(nil), content...)
	copy(want[512:1536], bytes.Repeat([]byte{0xd1}, 1024))
	clear(want[1536:3072])
	copy(want[4400:], []byte{0xee, 0xef})
	for range 2 {
		o := openT(t, dir, sparseBase{bytes.NewReader(content), false}, Options{BlockSize: 512})
		if d := firstDiff(readAll(t, o), want); d != "" {
			t.Fatal(d)
		}
		if o.Allocated() != 4*512 {
			t.Errorf("allocated %d, want 4 blocks", o.Allocated())
		}
		if err := o.Close(); err != nil {
			t.Fatal(err)
		}
		m, err := os.ReadFile(filepath.Join(dir, mapName))
		if err != nil {
			t.Fatal(err)
		}
		if m[8] != mapFormatV2 {
			t.Fatalf("map rewritten as version %d", m[8])
		}
	}
}

// TestMapFilledChunkConcurrentWrites: writers of different stripes that
// store at once into a chunk trimmed whole (a shared filled chunk) each
// get their block into the one private copy: none is lost.
func TestMapFilledChunkConcurrentWrites(t *testing.T) {
	const bs = 512
	size := int64(2*chunkBlocks) * bs
	content := make([]byte, size)
	o := openT(t, t.TempDir(), sparseBase{bytes.NewReader(content), false}, Options{BlockSize: bs})
	defer o.Close()
	if err := o.Trim(0, size); err != nil {
		t.Fatal(err)
	}
	if o.states.shared.Load() != 2 {
		t.Fatalf("%d filled chunks after a whole trim, want 2", o.states.shared.Load())
	}
	const writers = 8
	done := make(chan error, writers)
	for g := range writers {
		go func() {
			blk := bytes.Repeat([]byte{byte(g + 1)}, bs)
			var err error
			for i := range 64 {
				// Word g+8i of each chunk: a different stripe per writer.
				for _, c := range []int64{0, chunkBlocks} {
					if _, e := o.WriteAt(blk, (c+int64(g+writers*i)*blocksPerWord)*bs); e != nil && err == nil {
						err = e
					}
				}
			}
			done <- err
		}()
	}
	for range writers {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if got, want := o.states.countData(), int64(2*writers*64); got != want {
		t.Fatalf("%d Data blocks, want %d", got, want)
	}
	if o.states.private.Load() != 2 || o.states.shared.Load() != 0 {
		t.Fatalf("%d private chunks, %d filled, want 2 and 0", o.states.private.Load(), o.states.shared.Load())
	}
	got := readAll(t, o)
	for b := int64(0); b < 2*chunkBlocks; b++ {
		want := byte(0)
		if w := b % chunkBlocks; w%blocksPerWord == 0 && w/blocksPerWord < writers*64 {
			want = byte(w/blocksPerWord%writers + 1)
		}
		if got[b*bs] != want || got[b*bs+bs-1] != want {
			t.Fatalf("block %d reads %#x, want %#x", b, got[b*bs], want)
		}
	}
}

// TestStateMapRuns checks run, allBase, countData and hasZero against
// block-by-block answers on a map of three chunks (the last partial)
// after random runs of changes, some of whole chunks.
func TestStateMapRuns(t *testing.T) {
	const blocks = 2*chunkBlocks + 100
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 30 {
		m := newStateMap(blocks)
		for range 1 + trial%6 {
			s := State(1 + r.IntN(2))
			switch r.IntN(3) {
			case 0: // a whole chunk (shared filled chunk)
				m.setRun(int64(r.IntN(2))*chunkBlocks, chunkBlocks, s)
			case 1: // a short run, maybe across words or chunks
				start := r.Int64N(blocks - 40)
				m.setRun(start, 1+r.Int64N(40), s)
			default:
				start := r.Int64N(blocks)
				m.setRun(start, 1+r.Int64N(blocks-start), s)
			}
		}
		var data int64
		zero := false
		edges := []int64{0}
		states := make([]State, blocks)
		nonBase := make([]int64, blocks+1) // non-Base blocks before b
		for b := range int64(blocks) {
			states[b] = m.get(b)
			data += int64(states[b]) & 1
			zero = zero || states[b] == StateZero
			if b > 0 && states[b] != states[b-1] {
				edges = append(edges, b)
			}
			nonBase[b+1] = nonBase[b]
			if states[b] != StateBase {
				nonBase[b+1]++
			}
		}
		if m.countData() != data || m.hasZero() != zero {
			t.Fatalf("trial %d: countData %d hasZero %v, want %d %v", trial, m.countData(), m.hasZero(), data, zero)
		}
		var queries [][2]int64 // ranges ending or starting at each edge
		for _, e := range edges[1:] {
			for _, d := range []int64{1, 2, 17} {
				queries = append(queries, [2]int64{max(e-d, 0), e - 1}, [2]int64{e, min(e+d, blocks-1)}, [2]int64{e - 1, e})
			}
		}
		for range 2000 {
			b0 := r.Int64N(blocks)
			if r.IntN(2) == 0 { // near where the state changes
				b0 = min(max(edges[r.IntN(len(edges))]+r.Int64N(41)-20, 0), blocks-1)
			}
			b1 := b0 + r.Int64N(min(blocks-b0, 3*blocksPerWord))
			if r.IntN(4) == 0 {
				b1 = b0 + r.Int64N(blocks-b0)
			}
			queries = append(queries, [2]int64{b0, b1})
		}
		for _, q := range queries {
			b0, b1 := q[0], q[1]
			want := nonBase[b1+1] == nonBase[b0]
			if got := m.allBase(b0, b1); got != want {
				t.Fatalf("trial %d: allBase(%d, %d) = %v, want %v", trial, b0, b1, got, want)
			}
			s, n := m.run(b0, b1+1)
			i, _ := slices.BinarySearch(edges, b0+1) // the first edge after b0
			e := b1 + 1
			if i < len(edges) {
				e = min(e, edges[i])
			}
			if s != states[b0] || n != e-b0 {
				t.Fatalf("trial %d: run(%d, %d) = %v for %d, want %v for %d", trial, b0, b1+1, s, n, states[b0], e-b0)
			}
		}
	}
}
