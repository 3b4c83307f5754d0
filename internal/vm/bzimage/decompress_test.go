package bzimage

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
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

// TestDecompressKernelFormats decodes a payload of every compression the
// kernel supports, made by testdata/mkpayloads.sh with the kernel build's
// commands and size word.
func TestDecompressKernelFormats(t *testing.T) {
	want, err := os.ReadFile("testdata/payload.elf")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []Format{Gzip, Bzip2, LZMA, XZ, LZO, LZ4, Zstd} {
		t.Run(string(f), func(t *testing.T) {
			p, err := os.ReadFile(filepath.Join("testdata", "payload."+string(f)))
			if err != nil {
				t.Fatal(err)
			}
			if got := Detect(p); got != f {
				t.Fatalf("Detect = %s, want %s", got, f)
			}
			got, err := Vmlinux(context.Background(), image(5, 0x020f, 0x20, uint32(len(p)), p))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Vmlinux: %d bytes, want the %d of payload.elf", len(got), len(want))
			}
			// A size word that disagrees with the stream is an error.
			bad := bytes.Clone(p)
			bad[len(bad)-4]++
			if _, err := Decompress(context.Background(), bad, f); err == nil {
				t.Fatal("Decompress accepted a size word one byte off")
			}
			// So is a truncated stream.
			short := append(bytes.Clone(p[:len(p)/2]), p[len(p)-4:]...)
			if _, err := Decompress(context.Background(), short, f); err == nil {
				t.Fatal("Decompress accepted a stream cut in half")
			}
		})
	}
}

func TestDecompressBounds(t *testing.T) {
	for _, tt := range []struct {
		name string
		p    []byte
	}{
		{"only a size word", []byte{1, 0, 0, 0}},
		{"size word past the cap", append(gz(t, []byte("x")), 0xff, 0xff, 0xff, 0xff)},
		{"unknown format", []byte{1, 2, 3, 4, 5, 6, 7, 8}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decompress(context.Background(), tt.p, Detect(tt.p)); err == nil {
				t.Fatal("Decompress accepted it")
			}
		})
	}
}

func TestVmlinuxNotELF(t *testing.T) {
	p := append(gz(t, []byte("not an elf")), 10, 0, 0, 0)
	if _, err := Vmlinux(context.Background(), image(5, 0x020f, 0, uint32(len(p)), p)); err == nil {
		t.Fatal("Vmlinux accepted a payload that is not ELF")
	}
}

// TestVmlinuxDebian checks the real kernels fetched by `make kernel`:
// Debian's (xz) and the backports one (zstd), when present.
func TestVmlinuxDebian(t *testing.T) {
	dir := os.Getenv("NBDBOOT_BUILD")
	if dir == "" {
		t.Skip("NBDBOOT_BUILD not set")
	}
	for _, k := range []string{"kernel", "kernel-bpo"} {
		t.Run(k, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dir, k, "bzImage"))
			if err != nil {
				t.Skipf("no kernel fetched: %v", err)
			}
			_, f, err := Payload(b)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Vmlinux(context.Background(), b)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join(dir, k, "vmlinux"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: vmlinux differs from a fresh extraction (%d vs %d bytes)", f, len(got), len(want))
			}
			t.Logf("%s: %s payload, %d bytes of vmlinux", k, f, len(got))
		})
	}
}

// FuzzDecompress round-trips gzip payloads with their size word and feeds
// arbitrary bytes to every in-process decoder: no panic, and any output
// has exactly the declared size.
func FuzzDecompress(f *testing.F) {
	for _, name := range []string{"gzip", "zstd", "lz4", "lzma"} {
		p, err := os.ReadFile(filepath.Join("testdata", "payload."+name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p, false)
	}
	f.Add([]byte("\x7fELF kernel"), true)
	f.Fuzz(func(t *testing.T, b []byte, roundTrip bool) {
		if roundTrip {
			p := binary.LittleEndian.AppendUint32(gz(t, b), uint32(len(b)))
			got, err := Decompress(context.Background(), p, Gzip)
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("round trip of %d bytes: %d bytes, %v", len(b), len(got), err)
			}
			return
		}
		if len(b) > 4 && binary.LittleEndian.Uint32(b[len(b)-4:]) > 1<<24 {
			return // a large declared size is legal; keep the fuzzer's memory small
		}
		for f := range decoders {
			out, err := Decompress(context.Background(), b, f)
			if err == nil && uint32(len(out)) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
				t.Fatalf("%s: %d bytes out, size word says otherwise", f, len(out))
			}
		}
	})
}
