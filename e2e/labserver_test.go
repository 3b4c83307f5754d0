package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/cow"
	"github.com/nbdboot/nbdboot/server"
)

// labServer is an in-process nbdserve with copy-on-write exports: the
// overlays live under a state directory of the test, kept by a
// cow.Manager whose log (drops of idle overlays) goes to the same lineLog
// as the server's. The server logs at debug level, so refused requests
// show.
type labServer struct {
	Addr     string
	Log      *lineLog
	Overlays *cow.Manager

	exports *server.Exports
	cancel  context.CancelFunc
	done    chan error
}

// Cow manager log messages the tests wait for (cow/lifetime.go).
const logDroppedOverlay = "dropping idle ephemeral overlay"

// startLabServer serves exports on ln until the test ends, with the
// overlays under the state directory state (the exports' grace options
// set how long ephemeral ones outlive their client).
func startLabServer(t *testing.T, ln net.Listener, state string, exports ...server.ExportConfig) *labServer {
	t.Helper()
	s := &labServer{Log: newLineLog(), done: make(chan error, 1), Addr: ln.Addr().String()}
	logger := server.NewLogger(s.Log, true)
	m, err := cow.NewManager(cow.Config{Dir: state, Log: logger})
	if err != nil {
		ln.Close()
		t.Fatalf("overlay manager: %v", err)
	}
	s.Overlays = m
	table, err := server.OpenExports(exports, server.WithOverlays(m))
	if err != nil {
		ln.Close()
		m.Close()
		t.Fatalf("open exports: %v", err)
	}
	s.exports = table
	lim := server.DefaultLimits()
	lim.ShutdownGrace = time.Second
	srv, err := server.New(table, lim, logger)
	if err != nil {
		ln.Close()
		table.Close()
		m.Close()
		t.Fatalf("new server: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("nbdserve: %v", err)
		}
	})
	return s
}

// Stop shuts the server down, waits for it, closes the exports and then
// the overlays. Stopping twice is fine.
func (s *labServer) Stop() error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	s.cancel = nil
	var err error
	select {
	case err = <-s.done:
	case <-time.After(30 * time.Second):
		err = errors.New("did not stop within 30s")
	}
	err = errors.Join(err, s.exports.Close(), s.Overlays.Close())
	if err != nil {
		return fmt.Errorf("stop server on %s: %w; log:\n%s", s.Addr, err, s.Log.Tail(20))
	}
	return nil
}

// WaitLog waits up to d for n log lines holding substr.
func (s *labServer) WaitLog(substr string, n int, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := s.Log.WaitCount(ctx, substr, n); err != nil {
		return fmt.Errorf("server: %w; log:\n%s", err, s.Log.Tail(20))
	}
	return nil
}

// loopbackListener listens on a free loopback port.
func loopbackListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// fileSHA256 is the hex sha256 of a file's content.
func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("hash %s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
