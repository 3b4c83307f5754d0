package powerloss

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nbdboot/nbdboot/internal/disk"
	"golang.org/x/sys/unix"
)

// outcomes runs scenario on a fresh model for many seeds, crashes, and
// collects what read(root) returns after each crash.
func outcomes(t *testing.T, scenario func(m *Model, root string), read func(root string) string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for seed := range uint64(64) {
		root := t.TempDir()
		m, err := New(root, seed)
		if err != nil {
			t.Fatal(err)
		}
		scenario(m, root)
		if err := m.Crash(); err != nil {
			t.Fatal(err)
		}
		got[read(root)]++
	}
	return got
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func readOr(path, missing string) string {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return missing
	}
	return string(b)
}

// create makes root/name holding content, synced, with its entry durable.
func create(t *testing.T, m *Model, root, name string, content []byte) disk.File {
	t.Helper()
	f, err := m.OpenFile(filepath.Join(root, name), os.O_RDWR|os.O_CREATE, 0o600)
	must(t, err)
	_, err = f.WriteAt(content, 0)
	must(t, err)
	must(t, f.Sync())
	must(t, m.SyncDir(root))
	return f
}

func TestUnsyncedWriteTearsAtSectors(t *testing.T) {
	old, new := bytes.Repeat([]byte{'o'}, 2*SectorSize), bytes.Repeat([]byte{'n'}, 2*SectorSize)
	got := outcomes(t, func(m *Model, root string) {
		f := create(t, m, root, "f", old)
		_, err := f.WriteAt(new, 0)
		must(t, err)
		f.Close()
	}, func(root string) string { return readOr(filepath.Join(root, "f"), "missing") })
	want := map[string]bool{"oo": true, "on": true, "no": true, "nn": true}
	for content, n := range got {
		key := string(content[0]) + string(content[SectorSize])
		if len(content) != 2*SectorSize || !want[key] ||
			content != string(bytes.Repeat([]byte{key[0]}, SectorSize))+string(bytes.Repeat([]byte{key[1]}, SectorSize)) {
			t.Fatalf("a crash left %q (%d times): not a sector mix of old and new", content[:8], n)
		}
		delete(want, key)
	}
	if len(want) != 0 {
		t.Errorf("64 crashes never left %v: the model keeps too much", want)
	}
}

func TestSyncedWriteSurvives(t *testing.T) {
	for _, how := range []string{"fdatasync", "RWF_DSYNC"} {
		got := outcomes(t, func(m *Model, root string) {
			f := create(t, m, root, "f", []byte("old"))
			f.WriteAt([]byte("x"), 10) // unsynced, elsewhere
			if how == "fdatasync" {
				f.WriteAt([]byte("new"), 0)
				must(t, f.Datasync())
			} else {
				_, err := f.WriteAtDSync([]byte("new"), 0)
				must(t, err)
			}
			f.Close()
		}, func(root string) string { return readOr(filepath.Join(root, "f"), "missing")[:3] })
		if len(got) != 1 || got["new"] == 0 {
			t.Errorf("%s: crashes left %v, want new every time", how, got)
		}
	}
}

func TestRenameNeedsDirSyncAndFileSync(t *testing.T) {
	// Without a sync of the directory, the rename may be lost.
	got := outcomes(t, func(m *Model, root string) {
		create(t, m, root, "a", []byte("A")).Close()
		must(t, m.Rename(filepath.Join(root, "a"), filepath.Join(root, "b")))
	}, func(root string) string {
		return readOr(filepath.Join(root, "a"), "-") + readOr(filepath.Join(root, "b"), "-")
	})
	if got["A-"] == 0 || got["-A"] == 0 || len(got) != 2 {
		t.Errorf("rename without directory sync: crashes left %v, want both A- and -A and nothing else", got)
	}
	// With the directory synced but the file not, its content may be lost.
	got = outcomes(t, func(m *Model, root string) {
		f, err := m.OpenFile(filepath.Join(root, "t"), os.O_WRONLY|os.O_CREATE, 0o600)
		must(t, err)
		f.Write([]byte("content"))
		f.Close()
		must(t, m.Rename(filepath.Join(root, "t"), filepath.Join(root, "b")))
		must(t, m.SyncDir(root))
	}, func(root string) string { return readOr(filepath.Join(root, "b"), "missing") })
	if got["content"] == 0 || got["content"] == 64 || got["missing"] != 0 {
		t.Errorf("rename of an unsynced file, directory synced: crashes left %v, want content and less", got)
	}
}

func TestFailAndCut(t *testing.T) {
	root := t.TempDir()
	m, err := New(root, 1)
	must(t, err)
	f := create(t, m, root, "f", []byte("old"))
	m.Fail(func(op Op, path string) error {
		if op == OpDatasync {
			return unix.EIO
		}
		return nil
	})
	f.WriteAt([]byte("new"), 0)
	if err := f.Datasync(); !errors.Is(err, unix.EIO) {
		t.Fatalf("failing fdatasync: %v", err)
	}
	m.Fail(nil)
	m.CutAfter(1)
	if _, err := f.WriteAt([]byte("N"), 0); err != nil {
		t.Fatalf("write before the cut: %v", err)
	}
	if err := f.Datasync(); !errors.Is(err, ErrCut) || !m.IsCut() {
		t.Fatalf("fdatasync after the cut: %v", err)
	}
	f.Close()
	if m.Calls(OpDatasync) != 2 {
		t.Errorf("Calls(fdatasync) = %d, want 2", m.Calls(OpDatasync))
	}
}
