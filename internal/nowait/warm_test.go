package nowait

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/nbdboot/nbdboot/internal/testutil"
)

// warmFile is a 64-page file with pages [0, 10) and [20, 30) written
// (in the page cache) and the rest a hole never read, mapped.
func warmFile(t *testing.T) []byte {
	t.Helper()
	ps := PageSize()
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(64 * ps)); err != nil {
		t.Fatal(err)
	}
	page := make([]byte, ps)
	for _, p := range []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29} {
		page[0] = byte(p + 1)
		if _, err := f.WriteAt(page, int64(p*ps)); err != nil {
			t.Fatal(err)
		}
	}
	m := Map(int(f.Fd()), int64(64*ps))
	if m == nil {
		t.Fatal("map failed")
	}
	t.Cleanup(func() { Unmap(m) })
	return m
}

func TestWarmMapsResidentPagesOnly(t *testing.T) {
	m := warmFile(t)
	ps := PageSize()
	if got := testutil.MappedKiB(t, m); got != 0 {
		t.Fatalf("fresh mapping: %d KiB in its page tables, want 0", got)
	}
	var stop atomic.Bool
	if err := Warm(m, &stop); err != nil {
		t.Fatal(err)
	}
	if got, want := testutil.MappedKiB(t, m), 20*ps/1024; got != want {
		t.Errorf("after Warm: %d KiB in the page tables, want %d (the 20 resident pages)", got, want)
	}
	for _, p := range []int{10, 19, 30, 40, 63} {
		if Resident(m[p*ps : (p+1)*ps]) {
			t.Errorf("page %d of the hole is in the page cache after Warm: it read the hole", p)
		}
	}
}

func TestWarmStops(t *testing.T) {
	m := warmFile(t)
	var stop atomic.Bool
	stop.Store(true)
	if err := Warm(m, &stop); err != nil {
		t.Fatal(err)
	}
	if got := testutil.MappedKiB(t, m); got != 0 {
		t.Errorf("Warm told to stop entered %d KiB into the page tables, want 0", got)
	}
}
