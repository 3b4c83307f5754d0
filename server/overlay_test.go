package server

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nbdboot/nbdboot/cow"
	"github.com/nbdboot/nbdboot/protocol"
)

// cowServer serves a 4 MiB base (pattern in the first MiB, a hole after)
// as copy-on-write export "lab" and a plain read-only export "plain".
func cowServer(t *testing.T, mode string) (*testServer, string, string) {
	t.Helper()
	dir := t.TempDir()
	base := filepath.Join(dir, "base.img")
	if err := os.WriteFile(base, pattern(0, mib), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Truncate(base, 4*mib)
	state := filepath.Join(dir, "state")
	m, err := cow.NewManager(cow.Config{Dir: state})
	if err != nil {
		t.Fatal(err)
	}
	tab, err := OpenExports([]ExportConfig{
		{Name: "lab", Path: base, COW: mode, Description: "classroom"},
		{Name: "plain", Path: base, ReadOnly: true},
	}, WithOverlays(m))
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, tab, testLimits())
	t.Cleanup(func() { m.Close(); tab.Close() }) // runs after the server stopped
	return ts, base, state
}

func TestCOWExport(t *testing.T) {
	ts, base, state := cowServer(t, COWEphemeral)
	before, _ := os.ReadFile(base)

	// pc1 writes into its overlay, across the base's data and its hole.
	pc1 := dial(t, ts.addr, "lab/pc1", true)
	if f := pc1.neg.Flags; f&protocol.FlagReadOnly != 0 || f&protocol.FlagSendTrim == 0 || f&protocol.FlagCanMultiConn == 0 || pc1.neg.Size != 4*mib {
		t.Errorf("lab/pc1: flags %#x size %d", f, pc1.neg.Size)
	}
	data := bytes.Repeat([]byte{0xab}, 8192)
	if r := pc1.do(protocol.Request{Type: protocol.CmdWrite, Cookie: 1, Offset: mib - 4096, Length: 8192}, data); r.Errno != 0 {
		t.Fatalf("WRITE to lab/pc1: errno %d", r.Errno)
	}
	pc1.do(protocol.Request{Type: protocol.CmdFlush, Cookie: 2}, nil)
	pc1.disconnect()

	// pc1's second connection sees its write; pc2 and plain "lab" see the base.
	again := dial(t, ts.addr, "lab/pc1", true)
	r := again.do(protocol.Request{Type: protocol.CmdRead, Cookie: 3, Offset: mib - 8192, Length: 16384}, nil)
	want := append(append(pattern(mib-8192, 4096), data...), make([]byte, 4096)...)
	if r.Errno != 0 || !bytes.Equal(r.Data, want) {
		t.Errorf("lab/pc1 read back: errno %d, data ok %v", r.Errno, bytes.Equal(r.Data, want))
	}
	for _, name := range []string{"lab/pc2", "lab", "plain"} {
		c := dial(t, ts.addr, name, false)
		r := c.do(protocol.Request{Type: protocol.CmdRead, Cookie: 4, Offset: mib - 8192, Length: 16384}, nil)
		if want := append(pattern(mib-8192, 8192), make([]byte, 8192)...); r.Errno != 0 || !bytes.Equal(r.Data, want) {
			t.Errorf("%s: errno %d, sees pc1's write or wrong data", name, r.Errno)
		}
		c.disconnect()
	}
	// Plain "lab" is the overlay of the client's IP address.
	ro := dial(t, ts.addr, "lab", false)
	if ro.neg.Flags&protocol.FlagReadOnly != 0 {
		t.Error("plain lab is read-only, want the writable overlay of 127.0.0.1")
	}
	if r := ro.do(protocol.Request{Type: protocol.CmdWrite, Cookie: 5, Length: 1}, []byte{1}); r.Errno != 0 {
		t.Errorf("WRITE to plain lab: errno %d", r.Errno)
	}
	if ip := dial(t, ts.addr, "lab/127.0.0.1", false); !bytes.Equal(ip.do(protocol.Request{Type: protocol.CmdRead, Cookie: 6, Length: 1}, nil).Data, []byte{1}) {
		t.Error("lab/127.0.0.1 does not see the write to plain lab")
	}
	ro.disconnect()
	again.disconnect()

	if after, _ := os.ReadFile(base); !bytes.Equal(after, before) {
		t.Error("the base changed")
	}
	if _, err := os.Stat(filepath.Join(state, "lab", "pc1")); err != nil {
		t.Errorf("no overlay directory for pc1: %v", err)
	}
	// LIST shows the exports, not the overlays.
	nc := dialRaw(t, ts.addr)
	list, err := protocol.ClientList(nc.nc)
	if err != nil || len(list) != 2 || list[0].Name != "lab" || list[1].Name != "plain" {
		t.Errorf("LIST: %+v, %v", list, err)
	}
}

func TestCOWBadNames(t *testing.T) {
	ts, _, _ := cowServer(t, COWPersistent)
	for _, name := range []string{"plain/pc1", "nope/pc1", "lab/", "lab/" + strings.Repeat("x", 256), "lab/a/b", "lab/..", "lab/.", "lab/a\x00"} {
		c := dialRaw(t, ts.addr)
		if _, err := protocol.ClientHandshake(c.nc, protocol.ClientOptions{Export: name}); !errors.Is(err, protocol.ErrUnknownExport) {
			t.Errorf("GO %q: %v, want ErrUnknownExport", name, err)
		}
	}
	// A good one still works.
	c := dial(t, ts.addr, "lab/aa:bb:cc:dd:ee:ff", false)
	c.checkGoodRead(false)
	c.disconnect()
}

func TestCOWNeedsStateDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.img")
	os.WriteFile(path, make([]byte, 4096), 0o644)
	_, err := OpenExports([]ExportConfig{{Name: "lab", Path: path, COW: COWEphemeral}})
	if err == nil || err.Error() != `export "lab": cow needs the state directory, opened at start (restart nbdserve)` {
		t.Errorf("OpenExports: %v", err)
	}
}

// TestCOWPersistentAcrossRestart: a persistent overlay's writes survive
// a server restart (a new Manager over the same state directory).
func TestCOWPersistentAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.img")
	os.WriteFile(base, pattern(0, mib), 0o644)
	state := filepath.Join(dir, "state")
	data := bytes.Repeat([]byte{0x5c}, 4096)
	for round := range 2 {
		m, err := cow.NewManager(cow.Config{Dir: state})
		if err != nil {
			t.Fatal(err)
		}
		tab, err := OpenExports([]ExportConfig{{Name: "lab", Path: base, COW: COWPersistent}}, WithOverlays(m))
		if err != nil {
			t.Fatal(err)
		}
		ts := startServer(t, tab, testLimits())
		c := dial(t, ts.addr, "lab/pc1", false)
		if round == 0 {
			c.do(protocol.Request{Type: protocol.CmdWrite, Flags: protocol.CmdFlagFUA, Cookie: 1, Offset: 8192, Length: 4096}, data)
		}
		r := c.do(protocol.Request{Type: protocol.CmdRead, Cookie: 2, Offset: 8192, Length: 4096}, nil)
		if r.Errno != 0 || !bytes.Equal(r.Data, data) {
			t.Fatalf("round %d: lab/pc1 does not hold its write", round)
		}
		c.disconnect()
		ts.cancel()
		if err := <-ts.done; err != nil {
			t.Fatal(err)
		}
		ts.done <- nil
		m.Close()
		tab.Close()
	}
}
