package server

import (
	"io"
	"os"
	"testing"

	"github.com/nbdboot/nbdboot/protocol"
)

// Benchmarks of the whole server over loopback on a real file, for quick
// iteration (go test -bench Server -cpuprofile ...). The client is in the
// same process, so the numbers include its cost; compare with peers only
// through make bench.

func BenchmarkServerRead4KQD1(b *testing.B)    { benchServer(b, protocol.CmdRead, 4096, 1, true) }
func BenchmarkServerRead4KQD32(b *testing.B)   { benchServer(b, protocol.CmdRead, 4096, 32, true) }
func BenchmarkServerRead256KQD16(b *testing.B) { benchServer(b, protocol.CmdRead, 256<<10, 16, true) }
func BenchmarkServerWrite4KQD32(b *testing.B)  { benchServer(b, protocol.CmdWrite, 4096, 32, false) }
func BenchmarkServerWrite4MQD4(b *testing.B)   { benchServer(b, protocol.CmdWrite, 4<<20, 4, false) }

// benchServer keeps depth requests of one type and size in flight on one
// connection, at offsets spread over a 64 MiB file.
func benchServer(b *testing.B, typ uint16, size uint32, depth int, structured bool) {
	const fileSize = 64 << 20
	tab, _ := fileExports(b, fileSize, func(f *os.File) {
		buf := make([]byte, 1<<20)
		for off := int64(0); off < fileSize; off += int64(len(buf)) {
			fillPattern(buf, off)
			if _, err := f.WriteAt(buf, off); err != nil {
				b.Fatal(err)
			}
		}
	})
	ts := startServer(b, tab, testLimits())
	c := dial(b, ts.addr, "disk", structured)
	var payload []byte
	if typ == protocol.CmdWrite {
		payload = make([]byte, size)
	}
	slots := uint64(fileSize / size)
	next := uint64(0)
	send := func() {
		off := (next * 7919 % slots) * uint64(size)
		c.send(protocol.Request{Type: typ, Cookie: next, Offset: off, Length: size}, payload)
		next++
	}
	var hdr [protocol.ChunkHeaderSize + 8]byte
	recv := func() {
		// A READ's reply is a simple header or one OFFSET_DATA chunk
		// (the file has no holes); the rest is discarded.
		n := protocol.SimpleReplyHeaderSize
		data := 0
		if typ == protocol.CmdRead {
			data = int(size)
			if structured {
				n = protocol.ChunkHeaderSize + 8
			}
		}
		if _, err := io.ReadFull(c.br, hdr[:n]); err != nil {
			b.Fatal(err)
		}
		if _, err := c.br.Discard(data); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i < depth {
			send()
			continue
		}
		recv()
		send()
	}
	for range min(depth, b.N) {
		recv()
	}
	b.StopTimer()
	c.disconnect()
}
