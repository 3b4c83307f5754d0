package server

import (
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
	dir := b.TempDir()
	path := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(path, pattern(0, fileSize/2), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.Truncate(path, fileSize); err != nil {
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
	for _, name := range []string{"plain", "cow"} {
		export := "disk"
		if name == "cow" {
			export = "lab/pc1"
		}
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
