package cow

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/nbdboot/nbdboot/internal/nowait"
	"github.com/nbdboot/nbdboot/protocol"
)

// The benchmarks compare 4 KiB random I/O on an overlay with the same on
// a plain file (what server.FileBackend does); run them side by side:
//
//	go test -run XXX -bench 4K ./cow
const benchSize = 16 << 20

type ioTarget interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
}

func benchTargets(b *testing.B) map[string]ioTarget {
	base := newTestBase(b, benchSize)
	plain := plainCopy(b, base.content)
	ov := openT(b, b.TempDir(), base.be, Options{})
	b.Cleanup(func() { ov.Close() })
	// Half the overlay's blocks are its own, half the base's.
	buf := make([]byte, bs4k)
	for off := int64(0); off < benchSize; off += 2 * bs4k {
		if _, err := ov.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
	return map[string]ioTarget{"overlay": ov, "file": plain}
}

// plainCopy writes content into a plain file, what the overlay is
// compared with.
func plainCopy(b *testing.B, content []byte) *os.File {
	plain, err := os.OpenFile(filepath.Join(b.TempDir(), "plain.img"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { plain.Close() })
	if _, err := plain.WriteAt(content, 0); err != nil {
		b.Fatal(err)
	}
	return plain
}

func bench4K(b *testing.B, write bool, n int) {
	for _, name := range []string{"file", "overlay"} {
		b.Run(name, func(b *testing.B) {
			tg := benchTargets(b)[name]
			b.SetBytes(int64(n))
			b.RunParallel(func(pb *testing.PB) {
				r := rand.New(rand.NewPCG(rand.Uint64(), 1))
				buf := make([]byte, n)
				for pb.Next() {
					off := r.Int64N(benchSize/bs4k) * bs4k
					var err error
					if write {
						_, err = tg.WriteAt(buf, off)
					} else {
						_, err = tg.ReadAt(buf, off)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func BenchmarkOverlay4KRandRead(b *testing.B)  { bench4K(b, false, bs4k) }
func BenchmarkOverlay4KRandWrite(b *testing.B) { bench4K(b, true, bs4k) }

// BenchmarkOverlay512RandWrite writes partial blocks: on the overlay's
// Base blocks each is a read-modify-write.
func BenchmarkOverlay512RandWrite(b *testing.B) { bench4K(b, true, 512) }

// BenchmarkOverlay4KWriteFlush is a 4 KiB write then a FLUSH (what FUA
// costs): one fdatasync on the file, two on the overlay (data, journal).
func BenchmarkOverlay4KWriteFlush(b *testing.B) {
	for _, name := range []string{"file", "overlay"} {
		b.Run(name, func(b *testing.B) {
			tg := benchTargets(b)[name]
			sync := tg.(interface{ Sync() error })
			r := rand.New(rand.NewPCG(1, 1))
			buf := make([]byte, bs4k)
			b.SetBytes(bs4k)
			for b.Loop() {
				if _, err := tg.WriteAt(buf, r.Int64N(benchSize/bs4k)*bs4k); err != nil {
					b.Fatal(err)
				}
				if err := sync.Sync(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// memNoWaitBase is a base in memory with the server's non-blocking
// abilities: what the server's FileBackend is when its pages are cached.
type memNoWaitBase struct{ *bytes.Reader }

func (b memNoWaitBase) ReadAtNoWait(p []byte, off int64) (int, error) { return b.ReadAt(p, off) }
func (b memNoWaitBase) ExtentsNoWait(dst []protocol.Extent, off, length int64, max int) ([]protocol.Extent, bool) {
	return append(dst, protocol.Extent{Length: uint32(length)}), true
}
func (b memNoWaitBase) Extents(off, length int64, max int) ([]protocol.Extent, error) {
	return []protocol.Extent{{Length: uint32(length)}}, nil
}

// nowaitReader is what the server's read loop asks of a backend for a
// READ: its runs from memory, then a read without waiting.
type nowaitReader interface {
	ReadAtNoWait(p []byte, off int64) (int, error)
	ExtentsNoWait(dst []protocol.Extent, off, length int64, max int) ([]protocol.Extent, bool)
}

// BenchmarkReadNoWait4K is the server's inline 4 KiB READ (extents, then
// a non-blocking read) on the base itself and on an overlay over it whose
// blocks are all Base (a fresh overlay) or all Data (written): the
// overlay's own cost per READ.
func BenchmarkReadNoWait4K(b *testing.B) {
	data := make([]byte, benchSize)
	base := memNoWaitBase{bytes.NewReader(data)}
	for _, name := range []string{"base", "overlay-base", "overlay-data"} {
		b.Run(name, func(b *testing.B) {
			var tg nowaitReader = base
			if name != "base" {
				ov := openT(b, b.TempDir(), base, Options{})
				b.Cleanup(func() { ov.Close() })
				if name == "overlay-data" {
					if _, err := ov.WriteAt(data, 0); err != nil {
						b.Fatal(err)
					}
				}
				tg = ov
			}
			b.SetBytes(bs4k)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := rand.New(rand.NewPCG(rand.Uint64(), 1))
				buf := make([]byte, bs4k)
				exts := make([]protocol.Extent, 0, 32)
				for pb.Next() {
					off := r.Int64N(benchSize/bs4k) * bs4k
					if _, ok := tg.ExtentsNoWait(exts[:0], off, bs4k, 32); !ok {
						b.Error("extents would wait")
						return
					}
					if _, err := tg.ReadAtNoWait(buf, off); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkReopenFragmented reopens an overlay of a 1 GiB base whose
// client wrote 64k random 4 KiB blocks (a quarter of them): the cost of
// a client's reconnect after its overlay was closed idle.
func BenchmarkReopenFragmented(b *testing.B) {
	const size = 1 << 30
	path := filepath.Join(b.TempDir(), "base.img")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	base := &fileBase{File: f, size: size}
	dir := b.TempDir()
	o := openT(b, dir, base, Options{})
	r := rand.New(rand.NewPCG(1, 1))
	blk := bytes.Repeat([]byte{1}, bs4k)
	for range 64 << 10 {
		if _, err := o.WriteAt(blk, r.Int64N(size/bs4k)*bs4k); err != nil {
			b.Fatal(err)
		}
	}
	if err := o.Close(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		o := openT(b, dir, base, Options{})
		if err := o.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRead256KScattered reads 256 KiB ranges of an overlay four
// fifths of whose blocks, at random, are its own (as make bench's cow
// table leaves it after its writers), against the same reads of a plain
// file: the cost of a READ split into runs across the data file and the
// base. The -lend cases are what the server does instead for a large
// READ of cached data: the plain file's mapping checked resident
// (server.FileBackend.Lend), and the overlay's Lend, then Unlend; the
// server then writes either from the mappings with the same writev.
func BenchmarkRead256KScattered(b *testing.B) {
	const n = 256 << 10
	base := newTestBase(b, benchSize)
	plain := plainCopy(b, base.content)
	ov := openT(b, b.TempDir(), newMappedBase(b, base), Options{})
	b.Cleanup(func() { ov.Close() })
	r := rand.New(rand.NewPCG(1, 2))
	blk := make([]byte, bs4k)
	for off := int64(0); off < benchSize; off += bs4k {
		if r.IntN(5) != 0 {
			if _, err := ov.WriteAt(blk, off); err != nil {
				b.Fatal(err)
			}
		}
	}
	plainMap := nowait.Map(int(plain.Fd()), benchSize)
	if plainMap == nil {
		b.Fatal("cannot map the plain file")
	}
	b.Cleanup(func() { nowait.Unmap(plainMap) })
	for _, tc := range []struct {
		name string
		tg   io.ReaderAt
	}{{"file", plain}, {"overlay", ov}} {
		b.Run(tc.name, func(b *testing.B) {
			buf := make([]byte, n)
			b.SetBytes(n)
			for i := range b.N {
				off := int64(i) * 7919 % (benchSize / n) * n
				if _, err := tc.tg.ReadAt(buf, off); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("file-lend", func(b *testing.B) {
		b.SetBytes(n)
		for i := range b.N {
			off := int64(i) * 7919 % (benchSize / n) * n
			if !nowait.Resident(plainMap[off : off+n]) {
				b.Fatal("not resident")
			}
		}
	})
	b.Run("overlay-lend", func(b *testing.B) {
		segs := make([][]byte, 0, 64)
		b.SetBytes(n)
		b.ReportAllocs()
		for i := range b.N {
			off := int64(i) * 7919 % (benchSize / n) * n
			var held, ok bool
			if segs, held, ok = ov.Lend(segs[:0], off, n, nil); !ok {
				b.Fatal("not lent")
			}
			if held {
				ov.Unlend(off, n)
			}
		}
	})
}
