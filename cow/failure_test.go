package cow

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nbdboot/nbdboot/internal/disk/powerloss"
	"golang.org/x/sys/unix"
)

// Failures injected at the file system seam: the paths that must
// remember a failure, each checked by what a power cut leaves after it.

// failModel is an overlay directory under a power-loss model.
type failModel struct {
	t    *testing.T
	base *testBase
	root string
	dir  string
	m    *powerloss.Model
}

func newFailModel(t *testing.T, seed uint64) *failModel {
	t.Helper()
	root := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	m, err := powerloss.New(root, seed)
	if err != nil {
		t.Fatal(err)
	}
	return &failModel{t: t, base: newTestBase(t, testSize), root: root, dir: filepath.Join(root, "export", "client"), m: m}
}

func (f *failModel) open() *Overlay {
	f.t.Helper()
	ov, err := Open(f.dir, f.base.be, Options{FS: f.m})
	if err != nil {
		f.t.Fatalf("open: %v", err)
	}
	return ov
}

// failNext fails the next call of op on a path ending in suffix.
func (f *failModel) failNext(op powerloss.Op, suffix string, errno error) {
	done := false
	f.m.Fail(func(o powerloss.Op, path string) error {
		if o == op && strings.HasSuffix(path, suffix) && !done {
			done = true
			return errno
		}
		return nil
	})
}

// cutAndCheck cuts the power, reopens and checks block b reads want.
func (f *failModel) cutAndCheck(ov *Overlay, b int64, want []byte, what string) {
	f.t.Helper()
	f.cutAndCheckBlocks(ov, what, blockWant{b, want})
}

type blockWant struct {
	b    int64
	want []byte
}

// cutAndCheckBlocks cuts the power, reopens and checks blocks.
func (f *failModel) cutAndCheckBlocks(ov *Overlay, what string, blocks ...blockWant) {
	f.t.Helper()
	ov.abandon()
	if err := f.m.Crash(); err != nil {
		f.t.Fatal(err)
	}
	ov, err := Open(f.dir, f.base.be, Options{FS: f.m})
	if err != nil {
		f.t.Fatalf("%s: open after the cut: %v", what, err)
	}
	defer ov.Close()
	for _, bw := range blocks {
		got := make([]byte, bs4k)
		if _, err := ov.ReadAt(got, bw.b*bs4k); err != nil {
			f.t.Fatal(err)
		}
		if !bytes.Equal(got, bw.want) {
			f.t.Fatalf("%s: block %d lost its flushed content after a power cut: %s", what, bw.b, firstDiff(got, bw.want))
		}
	}
}

func fill(c byte) []byte { return bytes.Repeat([]byte{c}, bs4k) }

// TestFailedFdatasyncIsSticky: after the data file's fdatasync failed,
// the overlay refuses every request, and Sync keeps failing even if
// fdatasync would now succeed.
func TestFailedFdatasyncIsSticky(t *testing.T) {
	f := newFailModel(t, 1)
	ov := f.open()
	defer ov.Close()
	ov.WriteAt(fill(1), 0)
	if err := ov.Sync(); err != nil {
		t.Fatal(err)
	}
	ov.WriteAt(fill(2), 0)
	f.failNext(powerloss.OpDatasync, "/"+dataName, unix.EIO)
	if err := ov.Sync(); !errors.Is(err, unix.EIO) {
		t.Fatalf("Sync with a failing fdatasync: %v", err)
	}
	if err := ov.Sync(); !errors.Is(err, unix.EIO) {
		t.Errorf("the next Sync: %v, want the earlier EIO", err)
	}
	if _, err := ov.WriteAt(fill(3), bs4k); !errors.Is(err, unix.EIO) {
		t.Errorf("a write after it: %v, want the earlier EIO", err)
	}
	if _, err := ov.ReadAt(make([]byte, 1), 0); !errors.Is(err, unix.EIO) {
		t.Errorf("a read after it: %v, want the earlier EIO", err)
	}
}

// TestFirstSyncJournalFailure: a new overlay's first Sync writes the map,
// then the journal; when the journal fails after the map's rename, later
// Syncs must still fdatasync the data and make the directory durable
// (they once returned success without either: FLUSH acknowledged
// in-place rewrites that a power cut then lost), and the next state
// change must rewrite the map, the journal being gone or torn.
func TestFirstSyncJournalFailure(t *testing.T) {
	for _, at := range []struct {
		op   powerloss.Op
		path string
	}{
		{powerloss.OpCreate, journalName + tmpSuffix},
		{powerloss.OpRename, journalName},
		{powerloss.OpOpen, journalName},
	} {
		for seed := range uint64(12) {
			f := newFailModel(t, seed)
			ov := f.open()
			ov.WriteAt(fill(1), 0)
			f.failNext(at.op, "/"+at.path, unix.ENOSPC)
			if err := ov.Sync(); !errors.Is(err, unix.ENOSPC) {
				t.Fatalf("%s %s failing: Sync returned %v", at.op, at.path, err)
			}
			ov.WriteAt(fill(2), 0) // in place: no state change
			if err := ov.Sync(); err != nil {
				t.Fatalf("%s %s failing: the next Sync: %v", at.op, at.path, err)
			}
			ov.WriteAt(fill(3), 3*bs4k) // a state change: the journal is needed again
			if err := ov.Sync(); err != nil {
				t.Fatalf("%s %s failing: the Sync after: %v", at.op, at.path, err)
			}
			f.cutAndCheckBlocks(ov, string(at.op)+" "+at.path+" failing once", blockWant{0, fill(2)}, blockWant{3, fill(3)})
		}
	}
}

// TestJournalAppendFailure: a failed append (or its fdatasync) leaves
// the journal possibly torn; the next Sync must rewrite the map, which
// holds the changes of the failed batch too.
func TestJournalAppendFailure(t *testing.T) {
	for _, op := range []powerloss.Op{powerloss.OpWrite, powerloss.OpDatasync} {
		for seed := range uint64(8) {
			f := newFailModel(t, seed)
			ov := f.open()
			ov.WriteAt(fill(1), 0)
			if err := ov.Sync(); err != nil {
				t.Fatal(err)
			}
			ov.WriteAt(fill(2), bs4k) // Base -> Data: a journal record
			f.failNext(op, "/"+journalName, unix.EIO)
			if err := ov.Sync(); !errors.Is(err, unix.EIO) {
				t.Fatalf("journal %s failing: Sync returned %v", op, err)
			}
			if err := ov.Sync(); err != nil {
				t.Fatalf("journal %s failed once: the next Sync: %v", op, err)
			}
			f.cutAndCheck(ov, 1, fill(2), "journal "+string(op)+" failing once")
		}
	}
}

// TestDirSyncRetried: when making a new overlay's directory entries
// durable fails, the next Sync tries again; until one succeeds the
// overlay's directory may vanish with a power cut.
func TestDirSyncRetried(t *testing.T) {
	for seed := range uint64(12) {
		f := newFailModel(t, seed)
		ov := f.open()
		ov.WriteAt(fill(1), 0)
		f.failNext(powerloss.OpSyncDir, "/export", unix.EIO)
		if err := ov.Sync(); !errors.Is(err, unix.EIO) {
			t.Fatalf("Sync with a failing directory sync: %v", err)
		}
		if err := ov.Sync(); err != nil {
			t.Fatalf("the next Sync: %v", err)
		}
		f.cutAndCheck(ov, 0, fill(1), "directory sync failing once")
	}
}

// TestMapRenameFailureOnReopen: a reopen whose compaction (compactAt 0:
// a reopen compacts only a long journal) fails at the
// map's rename must leave the journal of the old generation in place: a
// journal of the new generation written first would hide its records.
func TestMapRenameFailureOnReopen(t *testing.T) {
	for seed := range uint64(8) {
		f := newFailModel(t, seed)
		ov := f.open()
		ov.WriteAt(fill(1), 0)
		if err := ov.Sync(); err != nil {
			t.Fatal(err)
		}
		ov.WriteAt(fill(2), 2*bs4k) // a journal record
		if err := ov.Sync(); err != nil {
			t.Fatal(err)
		}
		ov.abandon()
		f.failNext(powerloss.OpRename, "/"+mapName, unix.EIO)
		if _, err := open(f.dir, f.base.be, Options{FS: f.m}, nil, 0); !errors.Is(err, unix.EIO) {
			t.Fatalf("open with a failing map rename: %v", err)
		}
		f.cutAndCheck(f.open(), 2, fill(2), "map rename failing at reopen")
	}
}

// TestKillThenPowerCut: what an overlay reads after a reopen (a kill -9
// left unflushed rewrites in the page cache) must survive a power cut
// that follows: the open makes it durable.
func TestKillThenPowerCut(t *testing.T) {
	for seed := range uint64(16) {
		f := newFailModel(t, seed)
		ov := f.open()
		ov.WriteAt(fill(1), 0)
		if err := ov.Sync(); err != nil {
			t.Fatal(err)
		}
		ov.WriteAt(fill(2), 0) // in place, never flushed
		ov.abandon()           // kill -9
		ov = f.open()
		got := make([]byte, bs4k)
		ov.ReadAt(got, 0)
		f.cutAndCheck(ov, 0, got, "kill -9, reopen, power cut")
	}
}

// TestMetaSurvivesPowerCut: a power cut after meta.json was replaced and
// a compaction then synced the directory must leave a readable
// meta.json, so that the overlay is never served over another base.
// (Without the fsync before its rename the directory sync could make
// meta.json name an empty file: the next Manager skipped the overlay,
// and an Acquire over another base reused its data.)
func TestMetaSurvivesPowerCut(t *testing.T) {
	for seed := range uint64(16) {
		f := newFailModel(t, seed)
		mgr, err := NewManager(Config{Dir: f.root, FS: f.m, Linger: -1}) // a release closes
		if err != nil {
			t.Fatal(err)
		}
		pol := Policy{Persistent: true, BaseID: "A"}
		ov, release, err := mgr.Acquire("disk", "pc1", f.base.be, pol)
		if err != nil {
			t.Fatal(err)
		}
		ov.WriteAt(fill(1), 0)
		if err := ov.Sync(); err != nil {
			t.Fatal(err)
		}
		release() // closed: meta.json replaced
		ov, _, err = mgr.Acquire("disk", "pc1", f.base.be, pol)
		if err != nil {
			t.Fatal(err)
		}
		ov.compactAt = 0
		ov.WriteAt(fill(2), bs4k)
		if err := ov.Sync(); err != nil { // compaction: the directory is synced
			t.Fatal(err)
		}
		ov.abandon()
		if err := f.m.Crash(); err != nil {
			t.Fatal(err)
		}
		mgr2, err := NewManager(Config{Dir: f.root, FS: f.m})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := mgr2.Acquire("disk", "pc1", f.base.be, Policy{Persistent: true, BaseID: "B"}); !errors.Is(err, ErrBaseChanged) {
			t.Fatalf("seed %d: after a power cut, Acquire over another base: %v, want ErrBaseChanged", seed, err)
		}
	}
}
