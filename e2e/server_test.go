package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/server"
)

// nbdServer is an in-process nbdserve on 127.0.0.1: the exports are the
// test's image copies, its log goes to a lineLog the test can wait on.
type nbdServer struct {
	Addr string // 127.0.0.1:PORT
	Log  *lineLog

	exports *server.Exports
	ln      *dropListener
	cancel  context.CancelFunc
	done    chan error
}

// Server log messages the tests count (server/conn.go).
const (
	logConnected = "msg=connected"
)

// reservePort returns a free loopback address for a server that starts
// later (the relay is given its address before anything listens there).
func reservePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("reserve a loopback port: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startServer serves exports on addr ("127.0.0.1:0" for any port) until
// the test ends.
func startServer(t *testing.T, addr string, exports ...server.ExportConfig) *nbdServer {
	t.Helper()
	table, err := server.OpenExports(exports)
	if err != nil {
		t.Fatalf("open exports: %v", err)
	}
	s := &nbdServer{Log: newLineLog(), exports: table, done: make(chan error, 1)}
	lim := server.DefaultLimits()
	lim.ShutdownGrace = time.Second
	srv, err := server.New(table, lim, server.NewLogger(s.Log, false))
	if err != nil {
		table.Close()
		t.Fatalf("new server: %v", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		table.Close()
		t.Fatalf("listen on %s: %v", addr, err)
	}
	s.Addr = ln.Addr().String()
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

// Stop shuts the server down, waits for it and closes the images, so
// that the host sees everything the guest wrote. Stopping twice is fine.
func (s *nbdServer) Stop() error {
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
	if cerr := s.exports.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		return fmt.Errorf("stop server on %s: %w; log:\n%s", s.Addr, err, s.Log.Tail(20))
	}
	return nil
}

// Crash drops every connection at once, without a reply to the requests
// in flight (as a server that died would), then stops the server.
func (s *nbdServer) Crash() error {
	s.ln.DropAll()
	return s.Stop()
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
