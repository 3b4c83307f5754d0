package vm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/cow"
	"github.com/nbdboot/nbdboot/protocol"
	"github.com/nbdboot/nbdboot/server"
)

// ServerConfig says how StartServer runs an in-process nbdserve.
type ServerConfig struct {
	// Listener is served when set (e.g. one from Lab.Listen); else the
	// server listens on Addr ("127.0.0.1:0", any loopback port, when
	// empty).
	Listener net.Listener
	Addr     string
	// StateDir, when set, holds the copy-on-write overlays, kept by a
	// cow.Manager (Server.Overlays) whose log goes to the server's;
	// without it, cow exports fail to open.
	StateDir string
	// Debug logs at debug level, so refused requests show.
	Debug   bool
	Exports []server.ExportConfig
}

// Server is an in-process nbdserve for a test: its log goes to a LineLog
// the test can wait on; it stops at cleanup.
type Server struct {
	Addr     string // the listener's address
	Log      *LineLog
	Overlays *cow.Manager // nil without ServerConfig.StateDir

	exports *server.Exports
	ln      *dropListener
	cancel  context.CancelFunc
	done    chan error
}

// Server log messages tests wait for or count (server/conn.go,
// cow/lifetime.go).
const (
	LogConnected      = "msg=connected"
	LogDroppedOverlay = "dropping idle ephemeral overlay"
)

// StartServer serves c.Exports until the test ends (limits as nbdserve's
// defaults, with a 1 s shutdown grace).
func StartServer(t testing.TB, c ServerConfig) *Server {
	t.Helper()
	ln := c.Listener
	if ln == nil {
		addr := c.Addr
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			t.Fatalf("listen on %s: %v", addr, err)
		}
	}
	s := &Server{Log: NewLineLog(), done: make(chan error, 1), Addr: ln.Addr().String()}
	logger := server.NewLogger(s.Log, c.Debug)
	var opts []server.ExportsOption
	if c.StateDir != "" {
		m, err := cow.NewManager(cow.Config{Dir: c.StateDir, Log: logger})
		if err != nil {
			ln.Close()
			t.Fatalf("overlay manager: %v", err)
		}
		s.Overlays = m
		opts = append(opts, server.WithOverlays(m))
	}
	fail := func(format string, args ...any) {
		t.Helper()
		ln.Close()
		if s.exports != nil {
			s.exports.Close()
		}
		if s.Overlays != nil {
			s.Overlays.Close()
		}
		t.Fatalf(format, args...)
	}
	table, err := server.OpenExports(c.Exports, opts...)
	if err != nil {
		fail("open exports: %v", err)
	}
	s.exports = table
	lim := server.DefaultLimits()
	lim.ShutdownGrace = time.Second
	srv, err := server.New(table, lim, logger)
	if err != nil {
		fail("new server: %v", err)
	}
	s.ln = &dropListener{Listener: ln}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- srv.Serve(ctx, s.ln) }()
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("nbdserve: %v", err)
		}
	})
	return s
}

// Stop shuts the server down, waits for it and closes the exports and
// the overlays, so that the host sees everything the guests wrote.
// Stopping twice is fine.
func (s *Server) Stop() error {
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
	err = errors.Join(err, s.exports.Close())
	if s.Overlays != nil {
		err = errors.Join(err, s.Overlays.Close())
	}
	if err != nil {
		return fmt.Errorf("stop server on %s: %w; log:\n%s", s.Addr, err, s.Log.Tail(20))
	}
	return nil
}

// Crash drops every connection at once, without a reply to the requests
// in flight (as a server that died would), then stops the server.
func (s *Server) Crash() error {
	s.ln.DropAll()
	return s.Stop()
}

// Reload makes the exports match cfgs, as nbdserve does on SIGHUP.
func (s *Server) Reload(cfgs []server.ExportConfig) error {
	if _, _, err := s.exports.Update(cfgs); err != nil {
		return fmt.Errorf("reload server on %s: %w", s.Addr, err)
	}
	return nil
}

// DropConnections closes every connection at once, as a server-side
// network failure would; the server goes on accepting.
func (s *Server) DropConnections() { s.ln.DropAll() }

// Export is what the server answers for name in a handshake.
func (s *Server) Export(name string) (protocol.ExportInfo, error) { return s.exports.Export(name) }

// WaitLog waits up to d for n log lines holding substr.
func (s *Server) WaitLog(substr string, n int, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := s.Log.WaitCount(ctx, substr, n); err != nil {
		return fmt.Errorf("server: %w; log:\n%s", err, s.Log.Tail(20))
	}
	return nil
}

// LogReleased is the debug line a connection logs once it has given its
// export (and overlay) back, whatever ended it.
const LogReleased = `msg="export released"`

// WaitAllClosed waits up to d until every connection the server logged
// as connected has given its export back (a server started with Debug):
// a client that went away is noticed by the server a moment later, on
// its own goroutine, and only then stops counting in the overlays.
func (s *Server) WaitAllClosed(d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var open int
	err := s.Log.WaitUntil(ctx, func(lines []string) bool {
		open = 0
		for _, l := range lines {
			switch {
			case strings.Contains(l, LogConnected):
				open++
			case strings.Contains(l, LogReleased):
				open--
			}
		}
		return open == 0
	})
	if err != nil {
		return fmt.Errorf("server: %d connections still open: %w; log:\n%s", open, err, s.Log.Tail(20))
	}
	return nil
}

// ReservePort returns a free loopback address for a server that starts
// later (a guest's relay is given its address before anything listens).
func ReservePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("reserve a loopback port: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// dropListener remembers the connections it accepted so that a test can
// close them all at once.
type dropListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *dropListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

// DropAll closes every accepted connection.
func (l *dropListener) DropAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}
