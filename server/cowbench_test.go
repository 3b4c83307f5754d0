package server

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/nbdboot/nbdboot/cow"
	"github.com/nbdboot/nbdboot/protocol"
)

// BenchmarkExportRead4KQD1 reads 4 KiB at random (one request in flight)
// from the plain export of a half-sparse file and from a fresh
// copy-on-write overlay over the same file, as make bench's cow table
// does: the per-request cost the copy-on-write export adds.
func BenchmarkExportRead4KQD1(b *testing.B) {
	const fileSize = 64 << 20
	ts := exportsOf(b, fileSize/2, fileSize)
	for _, name := range []string{"plain", "cow"} {
		export := map[string]string{"plain": "disk", "cow": "lab/pc1"}[name]
		b.Run(name, func(b *testing.B) {
			c := dial(b, ts.addr, export, true)
			const slots = fileSize / 4096
			b.SetBytes(4096)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				req := protocol.Request{Type: protocol.CmdRead, Cookie: uint64(i), Offset: uint64(i) * 7919 % slots * 4096, Length: 4096}
				c.send(req, nil)
				if _, err := c.reply(req); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			c.disconnect()
		})
	}
}

// BenchmarkExportRead256KScattered reads 256 KiB ranges (one request in
// flight) from the plain export of a file and from a copy-on-write
// overlay over it four fifths of whose blocks, at random, the client
// wrote (as make bench's cow table leaves it after fio's random
// writes): the cost of a large READ whose range alternates between the
// overlay's data file and the base, once both are in the page cache.
func BenchmarkExportRead256KScattered(b *testing.B) {
	const fileSize, n = 64 << 20, 256 << 10
	ts := exportsOf(b, fileSize, fileSize)
	for _, name := range []string{"plain", "cow"} {
		export := map[string]string{"plain": "disk", "cow": "lab/pc1"}[name]
		b.Run(name, func(b *testing.B) {
			c := dial(b, ts.addr, export, true)
			defer c.disconnect()
			if name == "cow" {
				r := rand.New(rand.NewPCG(1, 2))
				blk := pattern(1, 4096)
				for off := int64(0); off < fileSize; off += 4096 {
					if r.IntN(5) != 0 {
						req := protocol.Request{Type: protocol.CmdWrite, Cookie: 1, Offset: uint64(off), Length: 4096}
						c.send(req, blk)
						if res, err := c.reply(req); err != nil || res.Errno != 0 {
							b.Fatalf("write: errno %d, %v", res.Errno, err)
						}
					}
				}
			}
			read := func(i int) {
				req := protocol.Request{Type: protocol.CmdRead, Cookie: uint64(i), Offset: uint64(i) * 7919 % (fileSize / n) * n, Length: n}
				c.send(req, nil)
				if res, err := c.reply(req); err != nil || res.Errno != 0 {
					b.Fatalf("read: errno %d, %v", res.Errno, err)
				}
			}
			for i := range fileSize / n { // into the page cache
				read(i)
			}
			b.SetBytes(n)
			b.ResetTimer()
			for i := range b.N {
				read(i)
			}
		})
	}
}

// exportsOf serves a file of size bytes, data bytes of a pattern then a
// hole, as a plain export (disk) and a copy-on-write one (lab, a
// client's overlay is lab/CLIENT).
func exportsOf(b *testing.B, data, size int) *testServer {
	dir := b.TempDir()
	path := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(path, pattern(0, data), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.Truncate(path, int64(size)); err != nil {
		b.Fatal(err)
	}
	m, err := cow.NewManager(cow.Config{Dir: filepath.Join(dir, "state")})
	if err != nil {
		b.Fatal(err)
	}
	tab, err := OpenExports([]ExportConfig{
		{Name: "disk", Path: path},
		{Name: "lab", Path: path, COW: COWEphemeral},
	}, WithOverlays(m))
	if err != nil {
		b.Fatal(err)
	}
	ts := startServer(b, tab, testLimits())
	b.Cleanup(func() { m.Close(); tab.Close() })
	return ts
}
