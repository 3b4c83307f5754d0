package cow

import (
	"bytes"
	"testing"

	"github.com/nbdboot/nbdboot/internal/testutil"
)

// TestReopenWarmsDataMapping: an overlay reopened over a data file whose
// written blocks are in the page cache enters them into its mapping's
// page tables in the background, and no hole page; a new overlay (empty
// data file) starts no warming; closing while warming waits for it.
func TestReopenWarmsDataMapping(t *testing.T) {
	const size = 256 * bs4k
	base := newTestBase(t, size)
	dir := t.TempDir()
	ov := openT(t, dir, base.be, Options{})
	if ov.warmDone != nil {
		t.Error("a new overlay warms its empty data file")
	}
	for _, b := range []int64{0, 1, 2, 3, 100, 101, 200} {
		if _, err := ov.WriteAt(bytes.Repeat([]byte{byte(b)}, bs4k), b*bs4k); err != nil {
			t.Fatal(err)
		}
	}
	if err := ov.Close(); err != nil {
		t.Fatal(err)
	}

	ov = openT(t, dir, base.be, Options{})
	defer ov.Close()
	if ov.warmDone == nil {
		t.Fatal("a reopened overlay does not warm its data file's mapping")
	}
	<-ov.warmDone
	if got, want := testutil.MappedKiB(t, ov.dmap), 7*bs4k/1024; got != want {
		t.Errorf("reopened overlay's data mapping: %d KiB in the page tables, want %d (its 7 written blocks)", got, want)
	}

	// Closing stops a warming under way (this one has finished; the
	// stop must not block or unmap twice).
	if err := ov.Close(); err != nil {
		t.Fatal(err)
	}
	if ov.dmap != nil || ov.warmDone != nil {
		t.Error("Close left the mapping or the warming")
	}
}
