package cow

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/nbdboot/nbdboot/internal/testutil"
	"golang.org/x/sys/unix"
)

// keptSetup is a Manager that closes released overlays at once (no
// linger) and keeps at most maxKept mappings, and a base for them.
func keptSetup(t *testing.T, maxKept int) (*Manager, *testBase) {
	t.Helper()
	m, err := NewManager(Config{Dir: t.TempDir(), Linger: -1, MaxIdleOpen: maxKept})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, newTestBase(t, testSize)
}

// writeLent writes block 3 of client's overlay and lends it (entering
// its pages into the mapping's page tables, as a lent READ's send does),
// releases it and returns the address of its data file's mapping.
func writeLent(t *testing.T, m *Manager, base *testBase, client string) uintptr {
	t.Helper()
	ov, release := acquireT(t, m, lab, client, newMappedBase(t, base), Policy{Persistent: true})
	if _, err := ov.WriteAt(fill(7), 3*bs4k); err != nil {
		t.Fatal(err)
	}
	segs, held, ok := ov.Lend(nil, 3*bs4k, bs4k, nil)
	if !ok || !bytes.Equal(lent(segs), fill(7)) {
		t.Fatalf("lend of the written block: ok %v, %d bytes", ok, len(lent(segs)))
	}
	if held {
		ov.Unlend(3*bs4k, bs4k)
	}
	addr := uintptr(unsafe.Pointer(&ov.dmap[0]))
	release()
	return addr
}

// TestKeptMappingReused: an overlay closed at the end of its linger keeps
// its data file's mapping, page tables and all, and its reopening takes it
// over (a new mapping would start with nothing in its page tables); the
// files are closed meanwhile.
func TestKeptMappingReused(t *testing.T) {
	m, base := keptSetup(t, 4)
	addr := writeLent(t, m, base, "pc1")
	e := m.entries[key{lab, "pc1"}]
	if e.ov != nil || e.kept == nil {
		t.Fatalf("released overlay: open %v, kept mapping %v; want closed, kept", e.ov != nil, e.kept != nil)
	}
	if kib, ok := testutil.MappingAt(t, addr); !ok || kib == 0 {
		t.Fatalf("kept mapping: present %v, %d KiB in the page tables; want the lent block's", ok, kib)
	}
	ov, release := acquireT(t, m, lab, "pc1", newMappedBase(t, base), Policy{Persistent: true})
	defer release()
	if got := uintptr(unsafe.Pointer(&ov.dmap[0])); got != addr || testutil.MappedKiB(t, ov.dmap) == 0 {
		t.Fatalf("reopened overlay maps its data file at %#x with %d KiB in the page tables; want the kept mapping at %#x, populated",
			got, testutil.MappedKiB(t, ov.dmap), addr)
	}
	if e.kept != nil || len(m.kept) != 0 {
		t.Error("the reopened overlay's entry still lists a kept mapping")
	}
	if !reads(t, ov, 3*bs4k, fill(7)) {
		t.Error("reopened overlay does not read its block")
	}
}

// TestKeptMappingOtherFile: a data file replaced while its overlay was
// closed (another inode) is mapped afresh: the kept mapping, of the old
// file, is given up, and the overlay reads the new file.
func TestKeptMappingOtherFile(t *testing.T) {
	m, base := keptSetup(t, 4)
	addr := writeLent(t, m, base, "pc1")
	e := m.entries[key{lab, "pc1"}]
	data := filepath.Join(e.dir, dataName)
	src, err := os.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	tmp := data + ".copy"
	dst, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	src.Close()
	// The copy's block 3 says 9: reading 9 proves the new file is read.
	if _, err := dst.WriteAt(fill(9), 3*bs4k); err != nil {
		t.Fatal(err)
	}
	dst.Close()
	if err := os.Rename(tmp, data); err != nil {
		t.Fatal(err)
	}
	ov, release := acquireT(t, m, lab, "pc1", newMappedBase(t, base), Policy{Persistent: true})
	defer release()
	if _, ok := testutil.MappingAt(t, addr); ok && uintptr(unsafe.Pointer(&ov.dmap[0])) == addr && testutil.MappedKiB(t, ov.dmap) > 0 {
		t.Fatal("the kept mapping of the replaced data file was taken over")
	}
	segs, held, ok := ov.Lend(nil, 3*bs4k, bs4k, nil)
	if !ok || !bytes.Equal(lent(segs), fill(9)) {
		t.Errorf("lend after the data file was replaced: ok %v, want the new file's block", ok)
	}
	if held {
		ov.Unlend(3*bs4k, bs4k)
	}
}

// TestKeptMappingsBounded: at most MaxIdleOpen mappings are kept, the
// oldest given up first; a reset overlay's and, at Close, every kept
// mapping is given up.
func TestKeptMappingsBounded(t *testing.T) {
	m, base := keptSetup(t, 2)
	var addrs []uintptr
	for _, c := range []string{"pc1", "pc2", "pc3"} {
		addrs = append(addrs, writeLent(t, m, base, c))
	}
	if len(m.kept) != 2 {
		t.Fatalf("%d mappings kept, want MaxIdleOpen (2)", len(m.kept))
	}
	for i, want := range []bool{false, true, true} {
		if _, ok := testutil.MappingAt(t, addrs[i]); ok != want {
			t.Errorf("pc%d's mapping present %v, want %v (the oldest given up)", i+1, ok, want)
		}
	}
	if err := m.Reset(lab, "pc2"); err != nil {
		t.Fatal(err)
	}
	if _, ok := testutil.MappingAt(t, addrs[1]); ok || len(m.kept) != 1 {
		t.Errorf("after Reset of pc2: its mapping present %v, %d kept; want gone, 1", ok, len(m.kept))
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := testutil.MappingAt(t, addrs[2]); ok || len(m.kept) != 0 {
		t.Errorf("after Close: pc3's mapping present %v, %d kept; want none", ok, len(m.kept))
	}
}

// dataFileUse is the disk space the data file of client's overlay uses.
func dataFileUse(t *testing.T, m *Manager, client string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(m.entries[key{lab, client}].dir, dataName), &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// TestReopenAfterCleanCloseSkipsReclaim: an overlay this Manager closed
// cleanly is reopened without the reclaim walk (FIEMAP over every extent
// of its data file: 46 ms for 100,000 scattered blocks of 1 GiB), since
// no crash can have come between; a new Manager (the server restarted)
// walks it again. A block written into the data file behind the
// overlay's back, as a crash would leave it, shows which open walked.
func TestReopenAfterCleanCloseSkipsReclaim(t *testing.T) {
	dir := t.TempDir()
	base := newTestBase(t, testSize)
	m, err := NewManager(Config{Dir: dir, Linger: -1})
	if err != nil {
		t.Fatal(err)
	}
	ov, release := acquireT(t, m, lab, "pc1", base.be, Policy{Persistent: true})
	if _, err := ov.WriteAt(fill(7), 0); err != nil {
		t.Fatal(err)
	}
	release() // closed at once, cleanly
	if !m.entries[key{lab, "pc1"}].closedCleanly {
		t.Fatal("a cleanly closed overlay's entry is not marked so")
	}
	stray := func() {
		t.Helper()
		f, err := os.OpenFile(filepath.Join(m.entries[key{lab, "pc1"}].dir, dataName), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt(fill(9), 8*bs4k); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	stray()
	before := dataFileUse(t, m, "pc1")
	_, release = acquireT(t, m, lab, "pc1", base.be, Policy{Persistent: true})
	if got := dataFileUse(t, m, "pc1"); got != before {
		t.Errorf("reopen after a clean close: data file %d bytes, was %d; the stray block was reclaimed (the walk ran)", got, before)
	}
	if m.entries[key{lab, "pc1"}].closedCleanly {
		t.Error("an open overlay's entry is still marked closed cleanly")
	}
	release()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	m2, err := NewManager(Config{Dir: dir, Linger: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	ov, release = acquireT(t, m2, lab, "pc1", base.be, Policy{Persistent: true})
	defer release()
	if got := dataFileUse(t, m2, "pc1"); got >= before {
		t.Errorf("first open by a new Manager: data file %d bytes, was %d; want the stray block reclaimed", got, before)
	}
	if !reads(t, ov, 0, fill(7)) || !reads(t, ov, 8*bs4k, base.content[8*bs4k:9*bs4k]) {
		t.Error("overlay does not read its block and the base after reclaim")
	}
}
