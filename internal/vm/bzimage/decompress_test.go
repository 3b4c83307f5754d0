package bzimage

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"testing"
)

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func TestVmlinuxGzip(t *testing.T) {
	elf := append([]byte("\x7fELF"), bytes.Repeat([]byte{7}, 100)...)
	// The kernel build appends the decompressed size after the stream.
	p := append(gz(t, elf), 0x68, 0, 0, 0)
	got, err := Vmlinux(context.Background(), image(5, 0x020f, 0x20, uint32(len(p)), p))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, elf) {
		t.Fatalf("Vmlinux = %x, want %x", got, elf)
	}
}

func TestVmlinuxNotELF(t *testing.T) {
	p := gz(t, []byte("not an elf"))
	if _, err := Vmlinux(context.Background(), image(5, 0x020f, 0, uint32(len(p)), p)); err == nil {
		t.Fatal("Vmlinux accepted a payload that is not ELF")
	}
}

// TestVmlinuxDebian checks the real kernel fetched by `make kernel`.
func TestVmlinuxDebian(t *testing.T) {
	dir := os.Getenv("NBDBOOT_BUILD")
	if dir == "" {
		t.Skip("NBDBOOT_BUILD not set")
	}
	b, err := os.ReadFile(filepath.Join(dir, "kernel", "bzImage"))
	if err != nil {
		t.Skipf("no kernel fetched: %v", err)
	}
	got, err := Vmlinux(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(dir, "kernel", "vmlinux"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("vmlinux differs from a fresh extraction (%d vs %d bytes)", len(got), len(want))
	}
}
