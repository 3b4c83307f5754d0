package server

import (
	"bytes"
	"github.com/nbdboot/nbdboot/protocol"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nbdboot/nbdboot/internal/testutil"
)

// TestFileBackendBlockDevice serves a loop device: size from the device,
// no holes reported, zeroing and discard through the block layer.
func TestFileBackendBlockDevice(t *testing.T) {
	testutil.RequireRoot(t)
	losetup := testutil.RequireTool(t, "losetup")
	img := filepath.Join(t.TempDir(), "loop.img")
	if err := os.WriteFile(img, pattern(0, 8*mib), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(losetup, "--find", "--show", img).CombinedOutput()
	if err != nil {
		testutil.Missing(t, "losetup %s: %v: %s", img, err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command(losetup, "-d", dev).Run() })

	b, err := OpenFile(dev, false)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Size() != 8*mib || b.MaybeSparse() {
		t.Fatalf("%s: Size %d MaybeSparse %v", dev, b.Size(), b.MaybeSparse())
	}
	if ext, err := b.Extents(0, 8*mib, 10); err != nil || len(ext) != 1 || ext[0] != (protocol.Extent{Length: 8 * mib}) {
		t.Errorf("Extents = %v, %v; want one data extent", ext, err)
	}
	if got := readBack(t, b, mib, 4096); !bytes.Equal(got, pattern(mib, 4096)) {
		t.Error("read through the loop device differs from the file")
	}
	data := bytes.Repeat([]byte{0x5a}, 64<<10)
	if err := b.WriteAtFUA(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Zero(64<<10, 64<<10, true, false); err != nil {
		t.Fatalf("Zero(noHole): %v", err)
	}
	if err := b.Zero(128<<10, 64<<10, false, false); err != nil {
		t.Fatalf("Zero: %v", err)
	}
	if err := b.Trim(4*mib, mib); err != nil {
		t.Fatalf("Trim: %v", err)
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte{}, data...), make([]byte, 128<<10)...)
	if got := readBack(t, b, 0, len(want)); !bytes.Equal(got, want) {
		t.Error("device contents after write and zero differ")
	}
}

func TestFileBackendWriteAtFUA(t *testing.T) {
	b, path := newTestFile(t, mib)
	if err := b.WriteAtFUA(pattern(4096, 8192), 4096); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got[4096:12288], pattern(4096, 8192)) {
		t.Error("WriteAtFUA data not in the file")
	}
}
