package server

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"github.com/nbdboot/nbdboot/protocol"
)

// TestCommandSemantics checks what each command does to the backend.
func TestCommandSemantics(t *testing.T) {
	tab, rw, _ := memExports(t, memSize)
	ts := startServer(t, tab, testLimits())
	c := dial(t, ts.addr, "mem", false)
	syncs := func() int { rw.mu.Lock(); defer rw.mu.Unlock(); return rw.syncs }

	if r := c.do(protocol.Request{Type: protocol.CmdWrite, Cookie: 1, Offset: 100, Length: 5}, []byte("hello")); r.Errno != 0 {
		t.Fatalf("WRITE: errno %d", r.Errno)
	}
	if got := rw.snapshot(100, 5); string(got) != "hello" || syncs() != 0 {
		t.Errorf("WRITE: stored %q, %d syncs", got, syncs())
	}
	c.do(protocol.Request{Type: protocol.CmdWrite, Flags: protocol.CmdFlagFUA, Cookie: 2, Offset: 200, Length: 3}, []byte("fua"))
	if syncs() != 1 {
		t.Errorf("WRITE with FUA: %d syncs, want 1", syncs())
	}
	c.do(protocol.Request{Type: protocol.CmdFlush, Cookie: 3}, nil)
	if syncs() != 2 {
		t.Errorf("FLUSH: %d syncs, want 2", syncs())
	}
	r := c.do(protocol.Request{Type: protocol.CmdWriteZeroes, Flags: protocol.CmdFlagNoHole | protocol.CmdFlagFUA, Cookie: 4, Offset: 100, Length: 200}, nil)
	if r.Errno != 0 || !bytes.Equal(rw.snapshot(100, 200), make([]byte, 200)) || syncs() != 3 {
		t.Errorf("WRITE_ZEROES: errno %d, zeroed %v, %d syncs", r.Errno, bytes.Equal(rw.snapshot(100, 200), make([]byte, 200)), syncs())
	}
	if r := c.do(protocol.Request{Type: protocol.CmdTrim, Flags: protocol.CmdFlagFUA, Cookie: 5, Length: 4096}, nil); r.Errno != 0 || syncs() != 4 {
		t.Errorf("TRIM with FUA: errno %d, %d syncs", r.Errno, syncs())
	}
	if r := c.do(protocol.Request{Type: protocol.CmdCache, Cookie: 6, Length: memSize}, nil); r.Errno != 0 {
		t.Errorf("CACHE: errno %d", r.Errno)
	}
	// A failed read is an error reply and the connection goes on.
	rw.mu.Lock()
	rw.readErr = errors.New("disk on fire")
	rw.mu.Unlock()
	if r := c.do(protocol.Request{Type: protocol.CmdRead, Cookie: 7, Length: 4096}, nil); r.Errno != protocol.EIO || r.Data != nil {
		t.Errorf("failed READ: errno %d, %d bytes of data", r.Errno, len(r.Data))
	}
	s := dial(t, ts.addr, "mem", true)
	r = s.do(protocol.Request{Type: protocol.CmdRead, Cookie: 8, Length: 4096}, nil)
	if r.Errno != protocol.EIO || len(r.Chunks) != 1 || r.Chunks[0].Type != protocol.ChunkError {
		t.Errorf("failed structured READ: errno %d chunks %+v", r.Errno, r.Chunks)
	}
	rw.mu.Lock()
	rw.readErr = nil
	rw.mu.Unlock()
	c.checkGoodRead(false)
	s.checkGoodRead(true)
	c.disconnect()
	s.disconnect()
}

// TestStructuredSparseRead reads a sparse file with structured replies:
// holes come as OFFSET_HOLE chunks, except with DF (one data chunk), and
// BLOCK_STATUS reports them, one extent with REQ_ONE.
func TestStructuredSparseRead(t *testing.T) {
	tab, _ := fileExports(t, 4*mib, func(f *os.File) {
		f.WriteAt(pattern(mib, 8192), mib)
	})
	ts := startServer(t, tab, testLimits())
	c := dial(t, ts.addr, "disk", true)
	want := make([]byte, 2*mib)
	copy(want[mib:], pattern(mib, 8192))

	req := protocol.Request{Type: protocol.CmdRead, Cookie: 1, Offset: 0, Length: 2 * mib}
	r := c.do(req, nil)
	var types []uint16
	for _, ch := range r.Chunks {
		types = append(types, ch.Type)
	}
	hole, data := protocol.ChunkOffsetHole, protocol.ChunkOffsetData
	if r.Errno != 0 || !bytes.Equal(r.Data, want) || !equalTypes(types, []uint16{hole, data, hole}) {
		t.Errorf("sparse READ: errno %d, data ok %v, chunk types %v", r.Errno, bytes.Equal(r.Data, want), types)
	}
	req.Flags, req.Cookie = protocol.CmdFlagDF, 2
	r = c.do(req, nil)
	if r.Errno != 0 || !bytes.Equal(r.Data, want) || len(r.Chunks) != 1 || r.Chunks[0].Type != data {
		t.Errorf("READ with DF: errno %d, %d chunks", r.Errno, len(r.Chunks))
	}

	bs := protocol.Request{Type: protocol.CmdBlockStatus, Cookie: 3, Offset: 0, Length: 2 * mib}
	r = c.do(bs, nil)
	id := c.neg.MetaContexts[protocol.MetaContextBaseAllocation]
	wantStatus := []uint32{id, mib, 3, 8192, 0, mib - 8192, 3}
	if r.Errno != 0 || !equalU32(r.Status, wantStatus) {
		t.Errorf("BLOCK_STATUS: errno %d status %v, want %v", r.Errno, r.Status, wantStatus)
	}
	bs.Flags, bs.Cookie, bs.Offset = protocol.CmdFlagReqOne, 4, mib
	r = c.do(bs, nil)
	if wantStatus := []uint32{id, 8192, 0}; r.Errno != 0 || !equalU32(r.Status, wantStatus) {
		t.Errorf("BLOCK_STATUS with REQ_ONE: errno %d status %v, want %v", r.Errno, r.Status, wantStatus)
	}
	c.disconnect()
}

func equalTypes(a, b []uint16) bool {
	return len(a) == len(b) && string(u16s(a)) == string(u16s(b))
}

func u16s(a []uint16) []byte {
	var b []byte
	for _, v := range a {
		b = append(b, u16(v)...)
	}
	return b
}

func equalU32(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestMaxPayload: READ and WRITE of exactly 32 MiB are served.
func TestMaxPayload(t *testing.T) {
	rw := newMemBackend(protocol.MaxPayload)
	tab, err := NewExports(&Export{Name: "big", Backend: rw})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, tab, testLimits())
	for _, structured := range []bool{false, true} {
		c := dial(t, ts.addr, "big", structured)
		data := bytes.Repeat([]byte{0x42}, protocol.MaxPayload)
		if r := c.do(protocol.Request{Type: protocol.CmdWrite, Cookie: 1, Length: protocol.MaxPayload}, data); r.Errno != 0 {
			t.Fatalf("32 MiB WRITE: errno %d", r.Errno)
		}
		r := c.do(protocol.Request{Type: protocol.CmdRead, Cookie: 2, Length: protocol.MaxPayload}, nil)
		if r.Errno != 0 || !bytes.Equal(r.Data, data) {
			t.Fatalf("32 MiB READ (structured %v): errno %d, data ok %v", structured, r.Errno, bytes.Equal(r.Data, data))
		}
		c.disconnect()
	}
}
