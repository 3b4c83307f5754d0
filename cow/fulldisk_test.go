package cow

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/nbdboot/nbdboot/internal/disk/powerloss"
	"golang.org/x/sys/unix"
)

// A persistent overlay must open on a full state disk: its client needs
// its root back even when it cannot write. Reads work; writes that need
// space fail with ENOSPC, as past the quota.

// writeThreeBlocks writes blocks 0 and 3 (one Sync) and 5 (a journal
// record of a second Sync) and returns the image the overlay then reads.
func writeThreeBlocks(t *testing.T, ov *Overlay, base []byte) []byte {
	t.Helper()
	model := append([]byte(nil), base...)
	for i, b := range []int64{0, 3, 5} {
		if _, err := ov.WriteAt(fill(byte(i+1)), b*bs4k); err != nil {
			t.Fatal(err)
		}
		copy(model[b*bs4k:], fill(byte(i+1)))
		if i != 1 {
			if err := ov.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	return model
}

// TestOpenOnFullDisk reopens an overlay while every write, file creation
// and RWF_DSYNC write fails with ENOSPC: with its journal as it was left,
// with a compaction due at open (compactAt 0), and with its journal lost
// (a crash inside a compaction: a new one must be written).
func TestOpenOnFullDisk(t *testing.T) {
	for _, tc := range []struct {
		name      string
		compactAt int64
		noJournal bool
	}{
		{"journal", journalMin, false},
		{"compaction due", 0, false},
		{"journal missing", journalMin, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFailModel(t, 1)
			ov := f.open()
			model := writeThreeBlocks(t, ov, f.base.content)
			if err := ov.Close(); err != nil {
				t.Fatal(err)
			}
			if tc.noJournal {
				// Lost between a compaction's map and journal renames:
				// the map holds everything.
				ov := f.open()
				ov.compactAt = 0
				if err := ov.Sync(); err != nil {
					t.Fatal(err)
				}
				if err := ov.Close(); err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(filepath.Join(f.dir, journalName)); err != nil {
					t.Fatal(err)
				}
			}
			f.m.Fail(func(op powerloss.Op, path string) error {
				switch op {
				case powerloss.OpWrite, powerloss.OpWriteSync, powerloss.OpCreate:
					return unix.ENOSPC
				}
				return nil
			})
			ov, err := open(f.dir, f.base.be, Options{FS: f.m}, nil, tc.compactAt)
			if err != nil {
				t.Fatalf("open on a full disk: %v", err)
			}
			checkImage(t, ov, model, "opened on a full disk")
			if _, err := ov.WriteAt(fill(9), 8*bs4k); !errors.Is(err, unix.ENOSPC) {
				t.Fatalf("write on a full disk: %v, want ENOSPC", err)
			}
			checkImage(t, ov, model, "after a write refused")
			if !tc.noJournal {
				// The journal is intact: a FLUSH with nothing new works.
				if err := ov.Sync(); err != nil {
					t.Fatalf("sync with nothing to save on a full disk: %v", err)
				}
			}
			// Room again: writes work and survive a power cut.
			f.m.Fail(nil)
			if _, err := ov.WriteAt(fill(9), 8*bs4k); err != nil {
				t.Fatal(err)
			}
			if err := ov.Sync(); err != nil {
				t.Fatal(err)
			}
			copy(model[8*bs4k:], fill(9))
			f.cutAndCheckBlocks(ov, "after the disk had room again",
				blockWant{0, model[:bs4k]}, blockWant{5, model[5*bs4k : 6*bs4k]}, blockWant{8, fill(9)})
		})
	}
}

// fullTmpfsEnv marks the child process of TestOpenOnFullTmpfs, which runs
// in its own mount namespace.
const fullTmpfsEnv = "NBDBOOT_COW_FULL_TMPFS"

// TestOpenOnFullTmpfs is TestOpenOnFullDisk on a real file system: a
// 1 MiB tmpfs, filled up, in a mount namespace of its own (root only).
func TestOpenOnFullTmpfs(t *testing.T) {
	if os.Getenv(fullTmpfsEnv) != "" {
		fullTmpfsChild(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("no unshare(1)")
	}
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", os.Args[0],
		"-test.run=^TestOpenOnFullTmpfs$", "-test.v")
	cmd.Env = append(os.Environ(), fullTmpfsEnv+"="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("full tmpfs: reopened")) {
		t.Fatalf("child in its own mount namespace: %v\n%s", err, out)
	}
}

func fullTmpfsChild(t *testing.T) {
	mnt := os.Getenv(fullTmpfsEnv)
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1M"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	base := newTestBase(t, testSize)
	state := filepath.Join(mnt, "state")
	pol := Policy{Persistent: true}
	m, err := NewManager(Config{Dir: state})
	if err != nil {
		t.Fatal(err)
	}
	ov, release := acquireT(t, m, lab, pc1, base.be, pol)
	model := writeThreeBlocks(t, ov, base.content)
	dir := ov.Dir()
	release()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// Fill the file system.
	filler, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := filler.Write(chunk); err != nil {
			if !errors.Is(err, unix.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	for len(chunk) > 1 { // and its last bytes
		if _, err := filler.Write(chunk); err != nil {
			chunk = chunk[:len(chunk)/2]
		}
	}
	filler.Close()
	// The client gets its overlay back through a new Manager (a server
	// restarted on the full disk).
	m, err = NewManager(Config{Dir: state, Linger: -1})
	if err != nil {
		t.Fatal(err)
	}
	ov, release = acquireT(t, m, lab, pc1, base.be, pol)
	checkFullOverlay(t, ov, model)
	release()
	m.Close()
	// A compaction due at open is given up.
	ov, err = open(dir, base.be, Options{}, nil, 0)
	if err != nil {
		t.Fatalf("open on a full tmpfs with a compaction due: %v", err)
	}
	checkFullOverlay(t, ov, model)
	ov.Close()
	t.Log("full tmpfs: reopened, read, refused a write")
}

// checkFullOverlay checks that ov, on a full disk, reads model, refuses a
// write to a new block with ENOSPC and syncs what it has.
func checkFullOverlay(t *testing.T, ov *Overlay, model []byte) {
	t.Helper()
	checkImage(t, ov, model, "opened on a full tmpfs")
	if _, err := ov.WriteAt(fill(9), 8*bs4k); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("write on a full tmpfs: %v, want ENOSPC", err)
	}
	if err := ov.Sync(); err != nil {
		t.Fatalf("sync with nothing to save on a full tmpfs: %v", err)
	}
}
