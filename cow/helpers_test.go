package cow

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"github.com/nbdboot/nbdboot/protocol"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// testBase is a base image file in a temporary directory: every byte
// non-zero (so a zero read is telling) except in the holes, which are
// left unallocated.
type testBase struct {
	path    string
	content []byte
	be      *fileBase
}

type byteRange struct{ off, n int64 }

func newTestBase(t testing.TB, size int64, holes ...byteRange) *testBase {
	t.Helper()
	content := make([]byte, size)
	for i := range content {
		content[i] = byte(i*7%251 + 1)
	}
	for _, h := range holes {
		clear(content[h.off : h.off+h.n])
	}
	path := filepath.Join(t.TempDir(), "base.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	// Write the data between holes; holes stay unallocated.
	pos := int64(0)
	for _, h := range append(holes, byteRange{size, 0}) {
		if h.off > pos {
			if _, err := f.WriteAt(content[pos:h.off], pos); err != nil {
				t.Fatal(err)
			}
		}
		pos = h.off + h.n
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	rf, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rf.Close() })
	be := &fileBase{File: rf, size: size}
	return &testBase{path: path, content: content, be: be}
}

func (b *testBase) sum(t testing.TB) [32]byte {
	t.Helper()
	data, err := os.ReadFile(b.path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(data)
}

// readAll reads the whole overlay.
func readAll(t testing.TB, o *Overlay) []byte {
	t.Helper()
	got := make([]byte, o.Size())
	if _, err := o.ReadAt(got, 0); err != nil {
		t.Fatalf("read whole overlay: %v", err)
	}
	return got
}

// firstDiff describes where two images differ, or returns "".
func firstDiff(got, want []byte) string {
	if bytes.Equal(got, want) {
		return ""
	}
	if len(got) != len(want) {
		return fmt.Sprintf("lengths differ: %d, want %d", len(got), len(want))
	}
	i := 0
	for got[i] == want[i] {
		i++
	}
	j := i
	for j < len(got) && got[j] != want[j] {
		j++
	}
	return fmt.Sprintf("bytes [%d,%d) differ: got %#x... want %#x...", i, j, got[i], want[i])
}

func openT(t testing.TB, dir string, base Base, opt Options) *Overlay {
	t.Helper()
	o, err := Open(dir, base, opt)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return o
}

// fileBase is a read-only base file that reports its holes with
// SEEK_DATA and SEEK_HOLE, like server.FileBackend does.
type fileBase struct {
	*os.File
	size int64
}

func (f *fileBase) Size() int64 { return f.size }

func (f *fileBase) Extents(off, length int64, max int) ([]protocol.Extent, error) {
	var out []protocol.Extent
	end := off + length
	for pos := off; pos < end && len(out) < max; {
		data, err := unix.Seek(int(f.Fd()), pos, unix.SEEK_DATA)
		if err == unix.ENXIO {
			data = end
		} else if err != nil {
			return nil, err
		}
		if data = min(data, end); data > pos {
			out = append(out, protocol.Extent{Length: uint32(data - pos), Flags: protocol.StateHoleZero})
			pos = data
			continue
		}
		hole, err := unix.Seek(int(f.Fd()), pos, unix.SEEK_HOLE)
		if err != nil {
			return nil, err
		}
		hole = min(hole, end)
		out = append(out, protocol.Extent{Length: uint32(hole - pos)})
		pos = hole
	}
	return out, nil
}
