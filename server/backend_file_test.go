package server

import (
	"bytes"
	"github.com/nbdboot/nbdboot/protocol"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

const (
	mib  = 1 << 20
	hole = protocol.StateHoleZero // the flags of a hole
)

// newFileBackend creates a sparse file of size bytes with data written at
// the given offsets (4 KiB of pattern each).
func newTestFile(t *testing.T, size int64, dataAt ...int64) (*FileBackend, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "b.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	for _, off := range dataAt {
		if _, err := f.WriteAt(pattern(off, 4096), off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	b, err := OpenFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, path
}

func readBack(t *testing.T, b Backend, off int64, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	if _, err := b.ReadAt(p, off); err != nil {
		t.Fatalf("ReadAt(%d, %d): %v", off, n, err)
	}
	return p
}

func TestFileBackendExtents(t *testing.T) {
	b, _ := newTestFile(t, 4*mib, mib, 3*mib)
	if b.Size() != 4*mib {
		t.Fatalf("Size = %d", b.Size())
	}
	if !b.MaybeSparse() {
		t.Errorf("MaybeSparse = false for a sparse file")
	}
	for _, tt := range []struct {
		off, n int64
		max    int
		want   []protocol.Extent
	}{
		{0, 4 * mib, 100, []protocol.Extent{{Length: mib, Flags: hole}, {Length: 4096}, {Length: 2*mib - 4096, Flags: hole}, {Length: 4096}, {Length: mib - 4096, Flags: hole}}},
		{0, 4 * mib, 1, []protocol.Extent{{Length: mib, Flags: hole}}},
		{0, 4 * mib, 2, []protocol.Extent{{Length: mib, Flags: hole}, {Length: 4096}}},
		{mib + 1024, 1024, 10, []protocol.Extent{{Length: 1024}}},
		{mib + 2048, 4096, 10, []protocol.Extent{{Length: 2048}, {Length: 2048, Flags: hole}}},
		{2 * mib, 512, 10, []protocol.Extent{{Length: 512, Flags: hole}}},
		{3 * mib, mib, 10, []protocol.Extent{{Length: 4096}, {Length: mib - 4096, Flags: hole}}},
	} {
		got, err := b.Extents(tt.off, tt.n, tt.max)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Extents(%d, %d, %d) = %v, want %v", tt.off, tt.n, tt.max, got, tt.want)
		}
	}
}

func TestFileBackendWriteTrimZero(t *testing.T) {
	b, _ := newTestFile(t, 4*mib)
	data := pattern(0, 2*mib)
	if _, err := b.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := readBack(t, b, 0, 2*mib); !bytes.Equal(got, data) {
		t.Fatal("read back differs from written data")
	}
	zero := make([]byte, mib)

	// Trim punches a hole.
	if err := b.Trim(0, mib); err != nil {
		t.Fatal(err)
	}
	ext, _ := b.Extents(0, 2*mib, 10)
	if want := []protocol.Extent{{Length: mib, Flags: hole}, {Length: mib}}; !reflect.DeepEqual(ext, want) {
		t.Errorf("after Trim: extents %v, want %v", ext, want)
	}
	if got := readBack(t, b, 0, mib); !bytes.Equal(got, zero) {
		t.Error("trimmed range does not read as zeroes")
	}

	// Zero with noHole keeps the range allocated.
	if _, err := b.WriteAt(data[:mib], 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Zero(0, mib, true, false); err != nil {
		t.Fatal(err)
	}
	if got := readBack(t, b, 0, mib); !bytes.Equal(got, zero) {
		t.Error("Zero(noHole) range does not read as zeroes")
	}
	ext, _ = b.Extents(0, 2*mib, 10)
	if len(ext) == 0 || ext[0].Zero() {
		t.Errorf("after Zero(noHole): extents %v, want data first", ext)
	}

	// Zero without noHole may punch a hole; fast must succeed here.
	if err := b.Zero(mib, mib, false, true); err != nil {
		t.Fatalf("fast Zero: %v", err)
	}
	if got := readBack(t, b, mib, mib); !bytes.Equal(got, zero) {
		t.Error("Zero range does not read as zeroes")
	}
	ext, _ = b.Extents(mib, mib, 10)
	if want := []protocol.Extent{{Length: mib, Flags: hole}}; !reflect.DeepEqual(ext, want) {
		t.Errorf("after Zero: extents %v, want %v", ext, want)
	}

	// The fallback writes zeroes.
	if _, err := b.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.writeZeroes(100, 3*mib/2); err != nil {
		t.Fatal(err)
	}
	got := readBack(t, b, 0, 2*mib)
	want := append(append(append([]byte{}, data[:100]...), make([]byte, 3*mib/2)...), data[100+3*mib/2:]...)
	if !bytes.Equal(got, want) {
		t.Error("writeZeroes: wrong contents")
	}
	if err := b.Cache(0, mib); err != nil {
		t.Errorf("Cache: %v", err)
	}
}

// openWritten writes data to a new file and opens it read-only; the
// bytes were just written, so they are in the page cache.
func openWritten(t *testing.T, data []byte) *FileBackend {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := OpenFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestFileBackendDense(t *testing.T) {
	b := openWritten(t, pattern(0, mib))
	if b.MaybeSparse() {
		t.Error("MaybeSparse = true for a fully written file")
	}
	if _, err := b.WriteAt([]byte{1}, 0); err == nil {
		t.Error("write to a read-only backend succeeded")
	}
}
