package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/nbdboot/nbdboot/internal/ratelog"
	"github.com/nbdboot/nbdboot/protocol"
)

// Server serves the exports of a Resolver to NBD clients.
type Server struct {
	res Resolver
	lim Limits
	log *slog.Logger
	sem *byteSem
	// fence orders the changes of a client's old and new connections.
	fence *fence
	// logs rate-limits the log lines of each source key.
	logs *ratelog.Limiter
	// keys gives a peer's source key (neighbors.go), by which the
	// budget, the negotiation slots and the log rate are shared.
	keys *neighbors

	mu       sync.Mutex
	conns    map[*conn]struct{} // in transmission
	hs       *negSlots          // connections in the handshake
	total    int
	shutting bool
	wg       sync.WaitGroup

	// onShutdown, if set (tests), runs once shutdown has been begun on
	// every connection; onConnDone after a connection in transmission
	// ended; onReleased once its export was released after that.
	onShutdown, onConnDone, onReleased func()
}

// New returns a server for the exports of r. A nil logger discards logs.
func New(r Resolver, lim Limits, log *slog.Logger) (*Server, error) {
	if err := lim.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{
		res:   r,
		lim:   lim,
		log:   log,
		sem:   newByteSem(lim.MaxBufferBytes),
		fence: newFence(lim, log),
		logs:  ratelog.New(time.Now),
		keys:  newNeighbors(dumpNeighbors, time.Now),
		conns: map[*conn]struct{}{},
	}
	s.hs = newNegSlots(lim.MaxNegotiating, s.sourceKey, time.Now)
	return s, nil
}

// sourceKey is the key a peer's fair shares are counted by: its
// link-layer address on the server's networks, else its IP address.
func (s *Server) sourceKey(a net.Addr) string { return s.keys.key(a) }

// Serve accepts connections on ln until ctx is cancelled. Then it stops
// accepting, closes connections still negotiating, lets every connection
// finish the requests in flight (answering new ones with ESHUTDOWN) and
// returns once all connections are closed. ln is closed on return.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ctx.Done():
			s.beginShutdown()
		case <-stop:
		}
		ln.Close()
	}()
	s.log.Info("serving", "addr", ln.Addr().String())
	var err error
	backoff := time.Duration(0)
	for {
		var nc net.Conn
		nc, err = ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				err = nil
				break
			}
			if errors.Is(err, net.ErrClosed) {
				err = fmt.Errorf("accept on %s: %w", ln.Addr(), err)
				s.beginShutdown()
				break
			}
			// EMFILE, ECONNABORTED and the like: keep serving.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "err", err, "backoff", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		slot := s.admit(nc)
		if slot == nil {
			continue
		}
		s.wg.Add(1)
		go s.handle(nc, slot)
	}
	s.wg.Wait()
	s.log.Info("stopped", "addr", ln.Addr().String())
	return err
}

// admit applies the connection caps; a refused connection is closed.
// It returns the connection's negotiation slot.
func (s *Server) admit(nc net.Conn) *negSlot {
	log := s.clientLog(nc)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.shutting:
		log.Info("refused: shutting down")
	case s.lim.MaxConnections > 0 && s.total >= s.lim.MaxConnections:
		log.Warn("refused: too many connections", "max_connections", s.lim.MaxConnections)
	default:
		slot, cut := s.hs.take(nc)
		if slot != nil {
			if cut != nil {
				s.clientLog(cut.nc).Warn("handshake cut off: its slot went to another address", "max_negotiating", s.lim.MaxNegotiating)
			}
			s.total++
			return slot
		}
		log.Warn("refused: too many connections negotiating from this address", "max_negotiating", s.lim.MaxNegotiating)
	}
	nc.Close()
	return nil
}

// clientLog is the logger of a connection: client= its address, and at
// most a few lines a second for each source key.
func (s *Server) clientLog(nc net.Conn) *slog.Logger {
	return s.logs.Logger(s.log, s.sourceKey(nc.RemoteAddr())).With("client", nc.RemoteAddr().String())
}

// handle runs one connection: handshake, then transmission.
func (s *Server) handle(nc net.Conn, slot *negSlot) {
	defer s.wg.Done()
	defer func() {
		nc.Close()
		s.mu.Lock()
		s.total--
		s.mu.Unlock()
	}()
	log := s.clientLog(nc)
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		// A client that powered off without a word (no DISC, no FIN)
		// must not hold its overlay's grace period open for minutes.
		tc.SetKeepAliveConfig(clientKeepAlive)
	}
	prov := &connProvider{res: s.res, peer: nc.RemoteAddr(), log: log}
	sess, err := s.handshake(nc, slot, prov)
	if err != nil {
		prov.abandon()
		switch {
		case errors.Is(err, protocol.ErrAborted), errors.Is(err, io.EOF):
			log.Debug("handshake ended by client", "err", err)
		default:
			log.Warn("handshake failed", "err", err)
		}
		return
	}
	exp, release := prov.take()
	defer func() {
		release()
		log.Debug("export released", "export", exp.Name)
		if s.onReleased != nil {
			s.onReleased()
		}
	}()
	if !exp.ReadOnly {
		be, leave := s.fence.enter(identity(exp, nc.RemoteAddr()), exp.Backend, func() { nc.Close() })
		defer leave()
		fenced := *exp
		fenced.Backend = be
		exp = &fenced
	}
	c := newConn(s, nc, sess, exp, log.With("export", exp.Name))
	if !s.register(c) {
		s.sem.leave(c.share) // never served: serve would have left
		return
	}
	defer s.unregister(c)
	c.serve()
	if s.onConnDone != nil {
		s.onConnDone()
	}
}

// handshake negotiates under the handshake deadline and frees the
// negotiating slot when done.
func (s *Server) handshake(nc net.Conn, slot *negSlot, prov *connProvider) (*protocol.Session, error) {
	defer func() {
		s.mu.Lock()
		s.hs.release(slot)
		s.mu.Unlock()
	}()
	s.mu.Lock() // ordered with beginShutdown and an eviction, which end it at once
	if s.shutting || slot.evicted {
		nc.SetDeadline(time.Unix(1, 0))
	} else {
		nc.SetDeadline(time.Now().Add(s.lim.HandshakeTimeout))
	}
	s.mu.Unlock()
	sess, err := protocol.ServerHandshake(nc, prov, protocol.ServerOptions{})
	if err != nil {
		return nil, err
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("clear handshake deadline: %w", err)
	}
	return sess, nil
}

func (s *Server) register(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutting {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// beginShutdown stops new connections, interrupts handshakes and starts
// draining every connection in transmission.
func (s *Server) beginShutdown() {
	s.mu.Lock()
	if s.shutting {
		s.mu.Unlock()
		return
	}
	s.shutting = true
	s.hs.each(func(nc net.Conn) { nc.SetDeadline(time.Unix(1, 0)) })
	for c := range s.conns {
		c.shutdown()
	}
	hook, n := s.onShutdown, len(s.conns)
	s.mu.Unlock()
	s.log.Info("shutting down: draining connections", "connections", n)
	if hook != nil {
		hook()
	}
}

// clientKeepAlive finds a vanished client in about 30 s: 15 s idle, then
// three probes 5 s apart.
var clientKeepAlive = net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3}
