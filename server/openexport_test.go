package server

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOverlayOpenFailsAtGO: an overlay that cannot be opened (a file
// stands where its directory should be) is an error reply to GO, which
// the client sees, not an acknowledged GO followed by a dropped
// connection; other clients are served meanwhile, and the client gets
// its overlay once the obstacle is gone.
func TestOverlayOpenFailsAtGO(t *testing.T) {
	base, m := patternBase(t)
	tab, err := OpenExports([]ExportConfig{{Name: "lab", Path: base, COW: COWPersistent}}, WithOverlays(m))
	if err != nil {
		t.Fatal(err)
	}
	ts, released, _ := policyServer(t, tab, m)
	state := filepath.Join(filepath.Dir(base), "state")
	blocker := filepath.Join(state, "lab", "pc1")
	if err := os.MkdirAll(filepath.Dir(blocker), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blocker, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = goClientErr(t, ts.addr, "127.0.0.2", "lab/pc1")
	if err == nil || !strings.Contains(err.Error(), "option GO") || !strings.Contains(err.Error(), "ERR_PLATFORM") ||
		!strings.Contains(err.Error(), "cannot be opened now") {
		t.Fatalf("GO for an overlay that cannot be opened: %v; want an ERR_PLATFORM reply to GO", err)
	}
	if strings.Contains(err.Error(), state) {
		t.Errorf("the error reply names the server's state directory: %v", err)
	}
	other := goClient(t, ts.addr, "127.0.0.3", "lab/pc2")
	got := make([]byte, 4096)
	if _, err := other.ReadAt(got, 8192); err != nil {
		t.Fatalf("another client's read while pc1's overlay fails: %v", err)
	}
	if !bytes.Equal(got, pattern(8192, 4096)) {
		t.Fatal("another client reads wrong data")
	}
	other.Disconnect()
	waitReleased(t, released, 1)
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	c := goClient(t, ts.addr, "127.0.0.2", "lab/pc1")
	if _, err := c.WriteAt(bytes.Repeat([]byte{7}, 4096), 0, 0); err != nil {
		t.Fatalf("write once the overlay opens: %v", err)
	}
	c.Disconnect()
}
