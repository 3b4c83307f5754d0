package cow

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestFreshOverlayLazyState: a new overlay writes no map or journal
// until a Sync has changes to save. A crash before that reopens as a
// fresh overlay reading the base; after it, the synced write is there.
func TestFreshOverlayLazyState(t *testing.T) {
	base := sizedReader{bytes.NewReader(bytes.Repeat([]byte{0xba}, 64<<10))}
	dir := t.TempDir()
	o, err := Open(dir, base, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Sync(); err != nil { // nothing to save
		t.Fatal(err)
	}
	for _, n := range []string{mapName, journalName} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			t.Errorf("%s written before any change", n)
		}
	}
	w := bytes.Repeat([]byte{0x11}, 4096)
	if _, err := o.WriteAt(w, 4096); err != nil {
		t.Fatal(err)
	}
	o.abandon() // crash before a Sync

	o, err = Open(dir, base, Options{})
	if err != nil {
		t.Fatalf("reopen after a crash before the first Sync: %v", err)
	}
	got := make([]byte, 4096)
	if o.ReadAt(got, 4096); got[0] != 0xba || o.Allocated() != 0 {
		t.Errorf("unsynced write survived: %#x, %d bytes allocated", got[0], o.Allocated())
	}
	if _, err := o.WriteAt(w, 8192); err != nil {
		t.Fatal(err)
	}
	if err := o.Sync(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{mapName, journalName} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s not written by the first Sync with changes: %v", n, err)
		}
	}
	if _, err := o.WriteAt(w, 12288); err != nil { // journaled at the next Sync
		t.Fatal(err)
	}
	if err := o.Sync(); err != nil {
		t.Fatal(err)
	}
	o.abandon()

	o, err = Open(dir, base, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	for _, off := range []int64{8192, 12288} {
		if o.ReadAt(got, off); !bytes.Equal(got, w) {
			t.Errorf("synced write at %d lost", off)
		}
	}
}
