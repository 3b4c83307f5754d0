package server

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/protocol"
)

// TestReloadWhileConnecting: reloads that change every setting a reload
// may change without reopening (description, grace, quota) run in a loop
// while clients negotiate plain, copy-on-write and NAME/CLIENT exports
// and read. Under -race this finds any export field written after it was
// published; every READ must still return the base's bytes.
func TestReloadWhileConnecting(t *testing.T) {
	base, m := patternBase(t)
	cfg := func(i int) []ExportConfig {
		desc := fmt.Sprintf("version %d", i)
		return []ExportConfig{
			{Name: "plain", Path: base, ReadOnly: true, Description: desc},
			{Name: "lab", Path: base, COW: COWEphemeral, Description: desc, Grace: Duration(time.Duration(i%3+1) * time.Second),
				Quota: Size(i%2+1) << 20},
		}
	}
	tab, err := OpenExports(cfg(0), WithOverlays(m))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); tab.Close() })
	ts := startServer(t, tab, testLimits())

	stop := make(chan struct{})
	reloaded := make(chan error, 1)
	go func() {
		for i := 1; ; i++ {
			select {
			case <-stop:
				reloaded <- nil
				return
			default:
			}
			if _, _, err := tab.Update(cfg(i)); err != nil {
				reloaded <- err
				return
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g, name := range []string{"plain", "lab", "lab/pc1", "lab/pc2", "", "plain"} {
		wg.Go(func() {
			for i := range 20 {
				if err := readOnce(ts.addr, name, int64(g*4096+i*512)); err != nil {
					errs <- fmt.Errorf("client %d (%q), connection %d: %w", g, name, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	if err := <-reloaded; err != nil {
		t.Fatalf("reload: %v", err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// readOnce connects, negotiates name (also listing the exports), reads
// 512 bytes at off, checks them against the pattern and disconnects.
func readOnce(addr, name string, off int64) error {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := protocol.ClientHandshake(nc, protocol.ClientOptions{Export: name, Structured: true}); err != nil {
		if name == "" {
			return nil // two exports: the empty name is unknown, as it should be
		}
		return fmt.Errorf("handshake: %w", err)
	}
	c := &client{nc: nc, br: bufio.NewReader(nc)}
	req := protocol.Request{Type: protocol.CmdRead, Cookie: 1, Offset: uint64(off), Length: 512}
	if _, err := nc.Write(protocol.AppendRequest(nil, req)); err != nil {
		return err
	}
	r, err := c.reply(req)
	if err != nil {
		return fmt.Errorf("READ: %w", err)
	}
	if r.Errno != 0 || !bytes.Equal(r.Data, pattern(off, 512)) {
		return fmt.Errorf("READ at %d: errno %d or wrong data", off, r.Errno)
	}
	_, err = nc.Write(protocol.AppendRequest(nil, protocol.Request{Type: protocol.CmdDisc}))
	return err
}

// TestReloadImageIdentity: an export's Image stays equal across reloads
// while the file is the same, and changes when the file at the path was
// replaced (by rename) or, for a read-only export, rewritten in place;
// connections of the old export keep reading the old file.
func TestReloadImageIdentity(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "img")
	if err := os.WriteFile(path, pattern(0, 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgs := []ExportConfig{{Name: "ro", Path: path, ReadOnly: true}}
	tab, err := OpenExports(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()
	first, release, err := tab.Acquire("ro")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if first.Image.IsZero() || first.Image.Size != 8192 {
		t.Fatalf("Image = %v", first.Image)
	}
	if _, _, err := tab.Update(cfgs); err != nil {
		t.Fatal(err)
	}
	if e, _ := tab.Resolve("ro"); e.Image != first.Image || e.Backend != first.Backend {
		t.Fatalf("unchanged file: Image %v -> %v, or reopened", first.Image, e.Image)
	}
	// A new version replaces the file by rename.
	tmp := filepath.Join(dir, "img.new")
	if err := os.WriteFile(tmp, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	opened, _, err := tab.Update(cfgs)
	if err != nil || len(opened) != 1 {
		t.Fatalf("Update after replace: opened %v, %v", opened, err)
	}
	e, _ := tab.Resolve("ro")
	if e.Image == first.Image || e.Image.Size != 4096 {
		t.Fatalf("replaced file: Image %v, was %v", e.Image, first.Image)
	}
	got := make([]byte, 512)
	if _, err := first.Backend.ReadAt(got, 512); err != nil || !bytes.Equal(got, pattern(512, 512)) {
		t.Fatalf("old connection's file: %v", err)
	}
}
