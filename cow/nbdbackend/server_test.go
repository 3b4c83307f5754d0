package nbdbackend

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/cow"
	"github.com/nbdboot/nbdboot/internal/testutil"
	"github.com/nbdboot/nbdboot/protocol"
	"github.com/nbdboot/nbdboot/server"
)

// classroom is a minimal resolver of the kind the server will have:
// "lab/CLIENT" is client CLIENT's overlay over the base of export "lab".
// It shows the wiring; the server's own resolver owns the name syntax.
type classroom struct {
	m    *cow.Manager
	base *server.FileBackend

	mu       sync.Mutex
	acquired int
	released int
	changed  chan struct{} // receives after every release
}

func (c *classroom) split(name string) (string, error) {
	client, ok := strings.CutPrefix(name, "lab/")
	if !ok {
		return "", fmt.Errorf("export %q: %w", name, protocol.ErrUnknownExport)
	}
	return client, nil
}

func (c *classroom) Export(name string) (protocol.ExportInfo, error) {
	if _, err := c.split(name); err != nil {
		return protocol.ExportInfo{}, err
	}
	return (&server.Export{Name: name, Backend: c.base}).Info(), nil
}

func (c *classroom) Exports() []protocol.ExportInfo { return nil }

func (c *classroom) AcquireFrom(name string, _ net.Addr) (*server.Export, func(), error) {
	client, err := c.split(name)
	if err != nil {
		return nil, nil, err
	}
	ov, release, err := c.m.Acquire("lab", client, Base(c.base), cow.Policy{})
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	c.acquired++
	c.mu.Unlock()
	counted := func() {
		release()
		c.mu.Lock()
		c.released++
		c.mu.Unlock()
		select {
		case c.changed <- struct{}{}:
		default:
		}
	}
	return &server.Export{Name: name, Backend: New(ov, nil)}, counted, nil
}

// waitReleased waits until every acquired overlay was released.
func (c *classroom) waitReleased(t *testing.T) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		done := c.acquired == c.released
		c.mu.Unlock()
		if done {
			return
		}
		select {
		case <-c.changed:
		case <-deadline:
			t.Fatal("connections not released within 10 s")
		}
	}
}

// TestWithServer serves overlays through package server to qemu-io and
// nbdinfo: two clients see their own writes over one base, the base
// stays as it was, and a client's data survives its reconnect.
func TestWithServer(t *testing.T) {
	qemuIO := testutil.RequireTool(t, "qemu-io")
	nbdinfo := testutil.RequireTool(t, "nbdinfo")
	dir := t.TempDir()
	basePath := filepath.Join(dir, "base.img")
	img := bytes.Repeat([]byte{0x11}, 1<<20)
	if err := os.WriteFile(basePath, img, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(basePath, 4<<20); err != nil { // 3 MiB hole
		t.Fatal(err)
	}
	fb, err := server.OpenFile(basePath, true)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	m, err := cow.NewManager(cow.Config{Dir: filepath.Join(dir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	res := &classroom{m: m, base: fb, changed: make(chan struct{}, 1)}
	srv, err := server.New(res, server.DefaultLimits(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	uri := func(client string) string { return fmt.Sprintf("nbd://%s/lab/%s", ln.Addr(), client) }
	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %q: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	// pc1 writes across the end of the base's data into its hole, and
	// zeroes its first block, allowing a hole (-u: no NO_HOLE flag).
	run(qemuIO, "-f", "raw", uri("pc1"), "-c", "write -P 0xab 1044480 8192", "-c", "write -z -u 0 4096", "-c", "flush")
	// pc1 reads its data back on a new connection; pc2 sees the base.
	run(qemuIO, "-f", "raw", uri("pc1"), "-c", "read -P 0xab 1044480 8192", "-c", "read -P 0 0 4096", "-c", "read -P 0x11 4096 4096")
	run(qemuIO, "-f", "raw", uri("pc2"), "-c", "read -P 0x11 0 1044480", "-c", "read -P 0 1048576 3M")
	// nbdcopy writes and reads over several connections at once
	// (multi-conn), all sharing pc3's overlay.
	nbdcopy := testutil.RequireTool(t, "nbdcopy")
	src := filepath.Join(dir, "src.img")
	pattern := make([]byte, 4<<20)
	for i := range pattern {
		pattern[i] = byte(i*13 + i>>12)
	}
	if err := os.WriteFile(src, pattern, 0o600); err != nil {
		t.Fatal(err)
	}
	run(nbdcopy, "--connections=4", "--flush", src, uri("pc3"))
	back := filepath.Join(dir, "back.img")
	run(nbdcopy, "--connections=4", uri("pc3"), back)
	if got, err := os.ReadFile(back); err != nil || !bytes.Equal(got, pattern) {
		t.Fatalf("pc3 copied back differs (%v)", err)
	}
	// The allocation map combines both layers.
	maps := run(nbdinfo, "--map", uri("pc1"))
	for _, want := range []string{"0        4096    3  hole,zero", "4096 1048576 0 data", "1052672 3141632 3 hole,zero"} {
		if !strings.Contains(strings.Join(strings.Fields(maps), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("nbdinfo --map lacks %q:\n%s", want, maps)
		}
	}
	got, err := os.ReadFile(basePath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:1<<20], img) || bytes.Count(got[1<<20:], []byte{0}) != 3<<20 {
		t.Fatal("the base image changed")
	}
	// Every connection has ended and released its overlay.
	res.waitReleased(t)
	infos := m.List()
	if len(infos) != 3 || infos[0].Client != "pc1" || infos[0].Size != 2*4096 || infos[1].Size != 0 ||
		infos[2].Size != 4<<20 || infos[0].Connections+infos[1].Connections+infos[2].Connections != 0 {
		t.Fatalf("List: %+v", infos)
	}
}
