package nbdbackend

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/nbdboot/nbdboot/cow"
	"github.com/nbdboot/nbdboot/server"
)

func TestBackend(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "base.img")
	img := bytes.Repeat([]byte{0x5a}, 8192)
	if err := os.WriteFile(path, img, 0o600); err != nil {
		t.Fatal(err)
	}
	// Make the second half a hole.
	f, _ := os.OpenFile(path, os.O_RDWR, 0)
	f.Truncate(4096)
	f.Truncate(1 << 20)
	f.Close()
	fb, err := server.OpenFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	ov, err := cow.Open(filepath.Join(dir, "overlay"), Base(fb), cow.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ov.Close()
	released := 0
	var be server.Backend = New(ov, func() { released++ })
	if _, err := be.WriteAt([]byte{1, 2, 3}, 8192+10); err != nil {
		t.Fatal(err)
	}
	exts, err := be.Extents(0, 1<<20, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []server.Extent{{Length: 4096}, {Length: 4096, Hole: true}, {Length: 4096}, {Length: 1<<20 - 3*4096, Hole: true}}
	if len(exts) != len(want) {
		t.Fatalf("extents %+v, want %+v", exts, want)
	}
	for i := range want {
		if exts[i] != want[i] {
			t.Fatalf("extents %+v, want %+v", exts, want)
		}
	}
	be.Close()
	be.Close()
	if released != 1 {
		t.Fatalf("release ran %d times, want 1", released)
	}
	if err := ov.Sync(); err != nil {
		t.Fatalf("overlay closed by the backend's Close: %v", err)
	}
}
