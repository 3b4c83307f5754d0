package server

import (
	"bytes"
	"fmt"
	"net"
	"testing"

	"github.com/nbdboot/nbdboot/cow"
	"github.com/nbdboot/nbdboot/protocol"
)

// TestCOWMapped: an overlay lends large READs from the base's mapping
// where its blocks are all Base, holding nothing, and from its data
// file's too where the client wrote, holding the blocks until Unlend.
func TestCOWMapped(t *testing.T) {
	_, base, _ := cowServer(t, COWEphemeral)
	be, err := OpenFile(base, true)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	ov, err := cow.Open(t.TempDir(), cowBase{be, abilitiesOf(be)}, cow.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ov.Close()
	a := abilitiesOf(&overlayBackend{Overlay: ov})
	if a.lender == nil {
		t.Fatal("overlay backend: no lender")
	}
	if _, err := be.ReadAt(make([]byte, mib), 0); err != nil { // into the page cache
		t.Fatal(err)
	}
	lend := func(off, n int64, wantHeld bool, want []byte) {
		t.Helper()
		segs, held, ok := a.lender.Lend(nil, off, n, nil)
		if !ok {
			t.Fatalf("Lend(%d, %d): not lent", off, n)
		}
		if held {
			defer a.lender.Unlend(off, n)
		}
		if got := bytes.Join(segs, nil); held != wantHeld || !bytes.Equal(got, want) {
			t.Fatalf("Lend(%d, %d): held %v, want %v; bytes as read %v", off, n, held, wantHeld, bytes.Equal(got, want))
		}
	}
	lend(0, 256<<10, false, pattern(0, 256<<10))
	if _, err := ov.WriteAt([]byte{1}, 100<<10); err != nil {
		t.Fatal(err)
	}
	want := pattern(0, 256<<10)
	want[100<<10] = 1
	lend(0, 256<<10, true, want)
	lend(256<<10, 256<<10, false, pattern(256<<10, 256<<10))
	for _, r := range [][2]int64{{-1, 10}, {4 * mib, 1}, {0, 0}} {
		if segs, _, ok := a.lender.Lend(nil, r[0], r[1], nil); ok {
			t.Errorf("Lend(%d, %d): %d slices, want none", r[0], r[1], len(segs))
		}
	}
}

// TestCOWLargeRead reads large ranges of a copy-on-write export, before
// and after a write into them: the base's bytes (sent from its mapping
// once cached), then the client's own.
func TestCOWLargeRead(t *testing.T) {
	ts, _, _ := cowServer(t, COWEphemeral)
	c := dial(t, ts.addr, "lab/pc1", true)
	defer c.disconnect()
	want := append(pattern(0, mib), make([]byte, mib)...)
	read := func(cookie uint64, off int64, n uint32) {
		t.Helper()
		r := c.do(protocol.Request{Type: protocol.CmdRead, Cookie: cookie, Offset: uint64(off), Length: n}, nil)
		if r.Errno != 0 || !bytes.Equal(r.Data, want[off:off+int64(n)]) {
			t.Fatalf("READ %d+%d: errno %d, data ok %v", off, n, r.Errno, bytes.Equal(r.Data, want[off:off+int64(n)]))
		}
	}
	for i := range 2 { // the second time from the page cache
		read(uint64(1+i), 0, 256<<10)
		read(uint64(3+i), 896<<10, 256<<10) // data, then the hole
	}
	w := bytes.Repeat([]byte{0xab}, 5000)
	if r := c.do(protocol.Request{Type: protocol.CmdWrite, Cookie: 5, Offset: 100 << 10, Length: 5000}, w); r.Errno != 0 {
		t.Fatalf("WRITE: errno %d", r.Errno)
	}
	copy(want[100<<10:], w)
	read(6, 0, 256<<10)
	read(7, 12345, 300000)
}

// TestCOWLentReadsWhole reads a range of a copy-on-write export, large
// enough to be lent from the overlay's mappings, while another
// connection of the same client rewrites it whole, each WRITE with one
// byte value, and while the reading connection pipelines a WRITE of the
// range behind each READ (the read loop serves the WRITE next, so the
// lent READ's reply must have left first, or it would wait for ever): no
// READ may return a mix of writes.
func TestCOWLentReadsWhole(t *testing.T) {
	ts, _, _ := cowServer(t, COWEphemeral)
	const off, n = 100<<10 + 512, 256 << 10
	fill := func(v byte) []byte { return bytes.Repeat([]byte{v}, n) }
	r := dial(t, ts.addr, "lab/pc1", true)
	defer r.disconnect()
	// A small receive buffer keeps each READ's reply on its way while
	// the other connection's WRITEs come in.
	if err := r.nc.(*net.TCPConn).SetReadBuffer(32 << 10); err != nil {
		t.Fatal(err)
	}
	wreq := protocol.Request{Type: protocol.CmdWrite, Cookie: 1, Offset: off, Length: n}
	if res := r.do(wreq, fill(1)); res.Errno != 0 {
		t.Fatalf("WRITE: errno %d", res.Errno)
	}
	w := dial(t, ts.addr, "lab/pc1", true)
	defer w.disconnect()
	done := make(chan struct{})
	wrote := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-done:
				wrote <- nil
				return
			default:
			}
			req := protocol.Request{Type: protocol.CmdWrite, Cookie: uint64(i), Offset: off, Length: n}
			w.send(req, fill(byte(2+i%100)))
			if res, err := w.reply(req); err != nil || res.Errno != 0 {
				wrote <- fmt.Errorf("WRITE %d: errno %d, %v", i, res.Errno, err)
				return
			}
		}
	}()
	for i := range 150 {
		read := protocol.Request{Type: protocol.CmdRead, Cookie: uint64(2*i + 10), Offset: off, Length: n}
		write := protocol.Request{Type: protocol.CmdWrite, Cookie: uint64(2*i + 11), Offset: off, Length: n}
		// Sent while the replies are read, as a client does: the
		// server may send a reply before it reads the payload.
		sent := make(chan error, 1)
		go func() {
			_, err := r.nc.Write(append(append(protocol.AppendRequest(nil, read), protocol.AppendRequest(nil, write)...), fill(byte(102+i%100))...))
			sent <- err
		}()
		reqs := map[uint64]protocol.Request{read.Cookie: read, write.Cookie: write}
		for range 2 {
			res, err := r.replyAny(reqs)
			if err != nil || res.Errno != 0 {
				t.Fatalf("request %d: errno %d, %v", res.Cookie, res.Errno, err)
			}
			if res.Cookie == read.Cookie && bytes.Count(res.Data, res.Data[:1]) != n {
				t.Fatalf("READ %d: a mix of writes (%d of %d bytes are byte 0's %d)", i, bytes.Count(res.Data, res.Data[:1]), n, res.Data[0])
			}
		}
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}

// TestCOWLentReadThenWrite pipelines a lent READ and a WRITE into its
// blocks, small enough to be read with it: the read loop serves the
// WRITE next, which waits for the READ's blocks, so the READ's reply
// must have left first. The READ reads what was there before the WRITE.
func TestCOWLentReadThenWrite(t *testing.T) {
	ts, _, _ := cowServer(t, COWEphemeral)
	const off, n = 192 << 10, minMapped
	c := dial(t, ts.addr, "lab/pc1", true)
	defer c.disconnect()
	want := pattern(off, n)
	for i := range 20 {
		v := bytes.Repeat([]byte{byte(i + 1)}, n/2)
		read := protocol.Request{Type: protocol.CmdRead, Cookie: uint64(2 * i), Offset: off, Length: n}
		write := protocol.Request{Type: protocol.CmdWrite, Cookie: uint64(2*i + 1), Offset: off + uint64(i%2)*n/2, Length: n / 2}
		c.write(append(append(protocol.AppendRequest(nil, read), protocol.AppendRequest(nil, write)...), v...))
		reqs := map[uint64]protocol.Request{read.Cookie: read, write.Cookie: write}
		for range 2 {
			res, err := c.replyAny(reqs)
			if err != nil || res.Errno != 0 {
				t.Fatalf("request %d: errno %d, %v", res.Cookie, res.Errno, err)
			}
			if res.Cookie == read.Cookie && !bytes.Equal(res.Data, want) {
				t.Fatalf("READ %d: not what the requests before it left", i)
			}
		}
		copy(want[write.Offset-off:], v)
	}
}
