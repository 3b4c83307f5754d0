package server

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/testutil"
	"github.com/nbdboot/nbdboot/protocol"
)

// shrinkingDisk serves a 16 MiB sparse file with 4 KiB of data at 1 MiB
// and at 12 MiB ("disk" and read-only "disk-ro"), and returns its path.
func shrinkingDisk(t *testing.T) (*testServer, string) {
	t.Helper()
	return dataDisk(t, mib, 12*mib)
}

// status asks BLOCK_STATUS for [off, off+n) and returns the errno.
func (c *client) status(off, n uint64) uint32 {
	c.t.Helper()
	return c.do(protocol.Request{Type: protocol.CmdBlockStatus, Cookie: 1, Offset: off, Length: uint32(n)}, nil).Errno
}

// readErrno READs [off, off+n) and returns the errno (and checks the
// data at 1 MiB against the pattern when it succeeded).
func (c *client) readErrno(off, n uint64) uint32 {
	c.t.Helper()
	r := c.do(protocol.Request{Type: protocol.CmdRead, Cookie: 2, Offset: off, Length: uint32(n)}, nil)
	if r.Errno == 0 && off == mib && string(r.Data[:4096]) != string(pattern(mib, 4096)) {
		c.t.Errorf("READ at %d: wrong data", off)
	}
	return r.Errno
}

// TestShrunkFile: a read-only file truncated from 16 to 8 MiB while
// served. A connection made before gets EIO for BLOCK_STATUS past 8 MiB
// within the check's cadence; one made after answers BLOCK_STATUS and
// READ past 8 MiB (data or hole) with EIO and before it as before.
func TestShrunkFile(t *testing.T) {
	ts, path := shrinkingDisk(t)
	old := dial(t, ts.addr, "disk-ro", true)
	if e := old.status(0, 16*mib); e != 0 {
		t.Fatalf("BLOCK_STATUS before the truncation: errno %d", e)
	}
	if err := os.Truncate(path, 8*mib); err != nil {
		t.Fatal(err)
	}
	// The connection made before sees it within the check's cadence
	// (100 ms), though the map knows the range.
	deadline := time.Now().Add(10 * time.Second)
	for old.status(9*mib, mib) != protocol.EIO {
		if time.Now().After(deadline) {
			t.Fatal("the connection made before the truncation still answers BLOCK_STATUS past the end")
		}
		<-time.After(10 * time.Millisecond)
	}
	c := dial(t, ts.addr, "disk-ro", true)
	for _, tt := range []struct {
		name   string
		errno  uint32
		status bool
		off, n uint64
	}{
		{"BLOCK_STATUS of the whole", protocol.EIO, true, 0, 16 * mib},
		{"BLOCK_STATUS of the hole cut off", protocol.EIO, true, 9 * mib, mib},
		{"BLOCK_STATUS of what is left", 0, true, 0, 8 * mib},
		{"READ of data cut off", protocol.EIO, false, 12 * mib, 4096},
		{"READ of a hole cut off", protocol.EIO, false, 9 * mib, 4096},
		{"READ across the new end", protocol.EIO, false, 8*mib - 4096, 8192},
		{"READ of data left", 0, false, mib, 4096},
	} {
		var got uint32
		if tt.status {
			got = c.status(tt.off, tt.n)
		} else {
			got = c.readErrno(tt.off, tt.n)
		}
		if got != tt.errno {
			t.Errorf("%s: errno %d, want %d", tt.name, got, tt.errno)
		}
	}
}

// TestRewrittenFile: a read-only file whose modification time changed
// while served (rewritten in place, same size) fails every READ and
// BLOCK_STATUS with EIO.
func TestRewrittenFile(t *testing.T) {
	ts, path := shrinkingDisk(t)
	simple := dial(t, ts.addr, "disk-ro", false)     // a READ in one piece
	if e := simple.readErrno(mib, 256<<10); e != 0 { // now in the page cache
		t.Fatalf("READ before the change: errno %d", e)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	c := dial(t, ts.addr, "disk-ro", true)
	if e := c.readErrno(mib, 4096); e != protocol.EIO {
		t.Errorf("READ: errno %d, want EIO", e)
	}
	if e := simple.readErrno(mib, 256<<10); e != protocol.EIO { // large, cached: from the mapping
		t.Errorf("READ of 256 KiB in one piece: errno %d, want EIO", e)
	}
	if e := c.status(0, 4096); e != protocol.EIO {
		t.Errorf("BLOCK_STATUS: errno %d, want EIO", e)
	}
	// The writable export of the same file is the server's own: its
	// clients change it, so it is not checked.
	w := dial(t, ts.addr, "disk", true)
	if e := w.readErrno(mib, 4096); e != 0 {
		t.Errorf("READ of the writable export: errno %d", e)
	}
}

// TestShrunkFileTools: nbdinfo --map and nbdcopy of a read-only file
// truncated while served fail (exit non-zero) instead of reporting or
// copying zeroes for what was cut off.
func TestShrunkFileTools(t *testing.T) {
	ts, path := shrinkingDisk(t)
	runTool(t, "nbdinfo", "--map", ts.uri("disk-ro")) // learns the map
	if err := os.Truncate(path, 8*mib); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"nbdinfo", "--map", ts.uri("disk-ro")},
		{"nbdcopy", ts.uri("disk-ro"), "null:"},
	} {
		cmd := exec.Command(testutil.RequireTool(t, args[0]), args[1:]...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("%s: exit 0 on a truncated file:\n%s", strings.Join(args, " "), out)
		}
	}
}
