package cow

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// crash drops the overlay as a kill -9 would: no Sync, no Close. What
// was written to the data file stays (it is in the page cache); state
// changes not yet in the journal are lost.
func crash(ov *Overlay) { ov.abandon() }

// blockOf returns block b of img.
func blockOf(img []byte, b int64) []byte { return img[b*bs4k : min((b+1)*bs4k, int64(len(img)))] }

// TestCrashKill9 spells out what survives a crash, block by block.
func TestCrashKill9(t *testing.T) {
	base := newTestBase(t, testSize, testHoles...)
	before := base.sum(t)
	dir := t.TempDir()
	ov := openT(t, dir, base.be, Options{})
	model := append([]byte(nil), base.content...)
	w(0, 4*bs4k, 0xa1).apply(t, ov, model)   // blocks 0-3: Data
	w(5*bs4k+7, 9, 0xa2).apply(t, ov, model) // block 5 (base hole): Data by RMW
	z(8*bs4k, bs4k).apply(t, ov, model)      // block 8: Zero
	tr(9*bs4k, bs4k).apply(t, ov, model)     // block 9: Zero
	if err := ov.Sync(); err != nil {
		t.Fatal(err)
	}
	synced := append([]byte(nil), model...)
	w(2*bs4k, 2*bs4k, 0xb1).apply(t, ov, model)  // Data blocks rewritten in place
	w(10*bs4k, 2*bs4k, 0xb2).apply(t, ov, model) // Base -> Data, state not durable
	tr(0, bs4k).apply(t, ov, model)              // Data -> Zero, state not durable
	z(12*bs4k+5, 5).apply(t, ov, model)          // Base -> Data by RMW
	w(8*bs4k+1, 1, 0xb3).apply(t, ov, model)     // Zero -> Data by RMW
	crash(ov)

	ov = openT(t, dir, base.be, Options{})
	defer ov.Close()
	got := readAll(t, ov)
	want := []struct {
		block int64
		img   []byte
		why   string
	}{
		{0, make([]byte, testSize), "block 0 was punched: reads zeroes, as the trim left it"},
		{1, synced, "flushed write"},
		{2, model, "rewrite of a Data block lands in place"},
		{3, model, "rewrite of a Data block lands in place"},
		{4, base.content, "never written"},
		{5, synced, "flushed read-modify-write"},
		{8, synced, "the later write to a Zero block is lost with its state"},
		{9, synced, "flushed trim"},
		{10, base.content, "unflushed Base->Data is lost: the base shows"},
		{11, base.content, "unflushed Base->Data is lost: the base shows"},
		{12, base.content, "unflushed zeroing of a Base edge is lost"},
		{16, base.content, "never written"},
	}
	for _, c := range want {
		if !bytes.Equal(blockOf(got, c.block), blockOf(c.img, c.block)) {
			t.Errorf("block %d: %s: %s", c.block, c.why, firstDiff(blockOf(got, c.block), blockOf(c.img, c.block)))
		}
	}
	if base.sum(t) != before {
		t.Fatal("the base image changed")
	}
}

// TestCrashRandom applies random requests, syncs now and then and
// crashes; after each reopen every block must read as it did at the last
// Sync or as one of the versions requests gave it since.
func TestCrashRandom(t *testing.T) {
	for seed := range uint64(8) {
		base := newTestBase(t, testSize, testHoles...)
		before := base.sum(t)
		dir := t.TempDir()
		r := rand.New(rand.NewPCG(seed, 99))
		model := append([]byte(nil), base.content...)
		for life := range 4 {
			ov := openT(t, dir, base.be, Options{})
			if seed%2 == 0 {
				ov.compactAt = 0 // compact at every Sync with changes
			}
			synced := append([]byte(nil), model...)
			versions := map[int64][][]byte{}
			for range 40 {
				p := randomOp(r)
				p.apply(t, ov, model)
				for b := p.off / bs4k; b <= (p.off+max(p.n, 1)-1)/bs4k && b*bs4k < testSize; b++ {
					versions[b] = append(versions[b], append([]byte(nil), blockOf(model, b)...))
				}
				if r.IntN(8) == 0 {
					if err := ov.Sync(); err != nil {
						t.Fatal(err)
					}
					synced = append(synced[:0], model...)
					clear(versions)
				}
			}
			crash(ov)
			ov = openT(t, dir, base.be, Options{})
			got := readAll(t, ov)
			for b := int64(0); b*bs4k < testSize; b++ {
				g := blockOf(got, b)
				ok := bytes.Equal(g, blockOf(synced, b))
				for _, v := range versions[b] {
					ok = ok || bytes.Equal(g, v)
				}
				if !ok {
					t.Fatalf("seed %d life %d: block %d reads neither as flushed nor as any later version: %s",
						seed, life, b, firstDiff(g, blockOf(synced, b)))
				}
			}
			checkExtentsAgree(t, ov, got, "after crash")
			model = got
			ov.Close()
		}
		if base.sum(t) != before {
			t.Fatal("the base image changed")
		}
	}
}

func randomOp(r *rand.Rand) op {
	off := r.Int64N(testSize)
	n := r.Int64N(min(3*bs4k, testSize-off)) + 1
	switch r.IntN(6) {
	case 0:
		return tr(off, n)
	case 1:
		return z(off, n)
	}
	return w(off, n, byte(r.IntN(255)+1))
}

// TestCrashTornMapWrite crashes between writing map.tmp (or journal.tmp)
// and renaming it, in a compaction at reopen: the previous map and
// journal must still be valid.
func TestCrashTornMapWrite(t *testing.T) {
	for _, at := range []string{mapName, journalName} {
		t.Run(at, func(t *testing.T) {
			base := newTestBase(t, testSize, testHoles...)
			dir := t.TempDir()
			ov := openT(t, dir, base.be, Options{})
			model := append([]byte(nil), base.content...)
			w(0, 3*bs4k, 0xc1).apply(t, ov, model)
			tr(5*bs4k, bs4k).apply(t, ov, model)
			if err := ov.Sync(); err != nil {
				t.Fatal(err)
			}
			crash(ov)
			injected := errors.New("crash before rename")
			hook := func(name string) error {
				if name == at {
					return injected
				}
				return nil
			}
			if o, err := open(dir, base.be, Options{}, hook, 0); !errors.Is(err, injected) {
				t.Fatalf("open with a crash at %s: %v", at, err)
			} else if o != nil {
				t.Fatal("open failed but returned an overlay")
			}
			// The temporary file may be torn too.
			tmp := filepath.Join(dir, at+tmpSuffix)
			if err := os.WriteFile(tmp, []byte("NBDCOW torn"), 0o600); err != nil {
				t.Fatal(err)
			}
			ov = openT(t, dir, base.be, Options{})
			defer ov.Close()
			checkImage(t, ov, model, "after the torn rewrite")
			if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s left behind: %v", tmp, err)
			}
		})
	}
}

// TestCrashTornCompaction fails the map rewrite that a Sync does.
func TestCrashTornCompaction(t *testing.T) {
	base := newTestBase(t, testSize)
	dir := t.TempDir()
	ov := openT(t, dir, base.be, Options{})
	model := append([]byte(nil), base.content...)
	w(0, bs4k, 0xd1).apply(t, ov, model)
	if err := ov.Sync(); err != nil {
		t.Fatal(err)
	}
	synced := append([]byte(nil), model...)
	injected := errors.New("crash before rename")
	ov.compactAt = 0
	ov.testHook = func(string) error { return injected }
	w(4*bs4k, bs4k, 0xd2).apply(t, ov, model)
	if err := ov.Sync(); !errors.Is(err, injected) {
		t.Fatalf("Sync with a failing compaction: %v", err)
	}
	crash(ov)
	ov = openT(t, dir, base.be, Options{})
	defer ov.Close()
	got := readAll(t, ov)
	if !bytes.Equal(blockOf(got, 0), blockOf(synced, 0)) {
		t.Fatal("flushed block 0 lost")
	}
	if b := blockOf(got, 4); !bytes.Equal(b, blockOf(synced, 4)) && !bytes.Equal(b, blockOf(model, 4)) {
		t.Fatal("block 4 reads as neither version")
	}
}

// TestCrashTornJournal appends what a torn or stale append leaves.
func TestCrashTornJournal(t *testing.T) {
	base := newTestBase(t, testSize)
	dir := t.TempDir()
	ov := openT(t, dir, base.be, Options{})
	model := append([]byte(nil), base.content...)
	w(0, 2*bs4k, 0xe1).apply(t, ov, model)
	if err := ov.Sync(); err != nil {
		t.Fatal(err)
	}
	gen := ov.gen
	crash(ov)
	jpath := filepath.Join(dir, journalName)
	tails := []struct {
		name string
		tail func(gen uint64) []byte
	}{
		// A record claiming block 0 is Zero with a wrong checksum.
		{"bad checksum", func(gen uint64) []byte {
			b := appendRecord(nil, gen, record{start: 0, count: 1, state: StateZero})
			b[recLen-1] ^= 1
			return b
		}},
		// Valid records of other generations.
		{"older generation", func(gen uint64) []byte {
			return appendRecord(nil, gen-1, record{start: 0, count: 1, state: StateZero})
		}},
		{"newer generation", func(gen uint64) []byte {
			return appendRecord(nil, gen+1, record{start: 0, count: 1, state: StateZero})
		}},
		// Ten bytes of a record.
		{"short record", func(gen uint64) []byte {
			return appendRecord(nil, gen, record{start: 0, count: 1, state: StateZero})[:10]
		}},
	}
	for _, tc := range tails {
		old, err := os.ReadFile(jpath)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(jpath, append(old, tc.tail(gen)...), 0o600); err != nil {
			t.Fatal(err)
		}
		ov = openT(t, dir, base.be, Options{})
		checkImage(t, ov, model, tc.name)
		gen = ov.gen
		crash(ov)
	}
	// A good record is applied: the test above can fail.
	old, _ := os.ReadFile(jpath)
	os.WriteFile(jpath, appendRecord(old, gen, record{start: 0, count: 1, state: StateZero}), 0o600)
	ov = openT(t, dir, base.be, Options{})
	defer ov.Close()
	clear(model[:bs4k])
	checkImage(t, ov, model, "good record")
}

// TestCorruptMap: a damaged map is an error, not an empty overlay.
func TestCorruptMap(t *testing.T) {
	base := newTestBase(t, testSize)
	dir := t.TempDir()
	ov := openT(t, dir, base.be, Options{})
	ov.WriteAt([]byte{1}, 0)
	ov.Close()
	mpath := filepath.Join(dir, mapName)
	good, err := os.ReadFile(mpath)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 9, 20, 30, 41, 45, len(good) - 1} {
		bad := append([]byte(nil), good...)
		bad[i] ^= 0x40
		os.WriteFile(mpath, bad, 0o600)
		if o, err := Open(dir, base.be, Options{}); err == nil {
			o.Close()
			t.Errorf("map with byte %d flipped opened", i)
		}
	}
	os.WriteFile(mpath, good[:len(good)-1], 0o600)
	if o, err := Open(dir, base.be, Options{}); err == nil {
		o.Close()
		t.Error("truncated map opened")
	}
}

// TestCrashReclaim: blocks written but lost to a crash give their disk
// space back at the next open.
func TestCrashReclaim(t *testing.T) {
	base := newTestBase(t, testSize)
	dir := t.TempDir()
	ov := openT(t, dir, base.be, Options{})
	w(0, bs4k, 1).apply(t, ov, append([]byte(nil), base.content...))
	ov.Sync()
	ov.WriteAt(make([]byte, 8*bs4k), 4*bs4k) // lost: never synced
	crash(ov)
	ov = openT(t, dir, base.be, Options{})
	defer ov.Close()
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(dir, dataName), &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used > 2*bs4k {
		t.Fatalf("data file uses %d bytes after reclaim, want one block", used)
	}
	if got := readAll(t, ov); !bytes.Equal(got[bs4k:], base.content[bs4k:]) {
		t.Fatal("reclaim changed what the overlay reads")
	}
}

// TestReclaimWalks runs both walks of reclaim (FIEMAP, and SEEK_DATA
// where the file system lacks it) over a data file of more extents than
// one FIEMAP batch, three blocks each (holes between), whose first block
// is a lost write: each walk punches exactly the lost ones.
func TestReclaimWalks(t *testing.T) {
	const blocks = 4 * (fiemapBatch + 64)
	base := newTestBase(t, blocks*bs4k)
	for _, walk := range []string{"fiemap", "seek"} {
		t.Run(walk, func(t *testing.T) {
			dir := t.TempDir()
			ov := openT(t, dir, base.be, Options{})
			defer ov.Close()
			model := append([]byte(nil), base.content...)
			var data int64
			for b := int64(0); b < blocks; b++ {
				if b%4 != 3 {
					w(b*bs4k, bs4k, byte(b%250+1)).apply(t, ov, model)
					data++
				}
			}
			if err := ov.dataW.Datasync(); err != nil { // allocated, not delayed
				t.Fatal(err)
			}
			// The state change of every extent's first block lost, as
			// to a crash.
			for b := int64(0); b < blocks; b += 4 {
				ov.states.setRun(b, 1, StateBase)
				copy(model[b*bs4k:(b+1)*bs4k], base.content[b*bs4k:])
				data--
			}
			switch walk {
			case "fiemap":
				if done, err := ov.reclaimFiemap(); err != nil {
					t.Fatal(err)
				} else if !done {
					t.Skip("no FIEMAP on this file system")
				}
			default:
				if err := ov.reclaimSeek(); err != nil {
					t.Fatal(err)
				}
			}
			var st unix.Stat_t
			if err := unix.Stat(filepath.Join(dir, dataName), &st); err != nil {
				t.Fatal(err)
			}
			// The Data blocks, and some of the file system's extent
			// tree (a lost block left unpunched would add 4 KiB each).
			if used, want := st.Blocks*512, data*bs4k; used < want || used > want+64<<10 {
				t.Errorf("data file uses %d bytes after reclaim, want %d (the Data blocks) + at most 64 KiB", used, want)
			}
			if got := readAll(t, ov); !bytes.Equal(got, model) {
				t.Fatalf("reclaim changed what the overlay reads: %s", firstDiff(got, model))
			}
		})
	}
}
