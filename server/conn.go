package server

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nbdboot/nbdboot/protocol"
)

// readerPool recycles the connections' request readers (64 KiB each), so
// that clients connecting and leaving do not grow the heap.
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

// conn is one client connection in the transmission phase.
type conn struct {
	srv  *Server
	nc   net.Conn
	r    *bufio.Reader
	w    io.Writer
	raw  *rawSock // nil: w and the session's reader do the I/O
	log  *slog.Logger
	exp  *Export
	be   Backend
	size uint64
	abl  abilities // the backend's optional abilities
	// exts and statusExts are the read loop's scratch space for a
	// READ's runs and a BLOCK_STATUS reply's.
	exts       [maxReadChunks + 1]protocol.Extent
	statusExts []protocol.Extent
	structured bool
	hasMeta    bool
	metaID     uint32

	// slots bounds the requests being served on this connection.
	slots chan struct{}
	// share is the connection's address's part of the server's byte
	// budget.
	share *budgetShare
	// shutdownGrace is set at shutdown (ns): payload and reply
	// deadlines are at most that far away from then on.
	shutdownGrace atomic.Int64

	wmu        sync.Mutex // guards the reply queue
	writing    bool       // a goroutine is sending the queue
	queue      net.Buffers
	dones      []*reply
	spareQueue net.Buffers
	spareDones []*reply
	broken     atomic.Bool
	// replies and their bytes queued by the read loop since its last
	// flush; read loop only
	queued, queuedBytes int

	mu       sync.Mutex
	idle     sync.Cond // signalled when inflight drops to 0
	inflight int
	shutting bool
	// inPayload: the read loop is reading a WRITE's payload;
	// readClosed: the shutdown grace ended reading.
	inPayload, readClosed bool
	drained               chan struct{} // closed once shutting and idle
	done                  chan struct{} // closed when serve returns
}

func newConn(s *Server, nc net.Conn, sess *protocol.Session, exp *Export, log *slog.Logger) *conn {
	c := &conn{
		srv:        s,
		nc:         nc,
		abl:        abilitiesOf(exp.Backend),
		w:          nc,
		log:        log,
		exp:        exp,
		be:         exp.Backend,
		size:       uint64(exp.Backend.Size()),
		structured: sess.Structured,
		slots:      make(chan struct{}, s.lim.MaxInFlight),
		share:      s.sem.join(s.sourceKey(nc.RemoteAddr())),
		drained:    make(chan struct{}),
		done:       make(chan struct{}),
	}
	var in io.Reader = sess.Conn
	if sess.Conn != io.ReadWriter(nc) {
		c.w = sess.Conn
	} else if c.raw = newRawSock(nc); c.raw != nil {
		in = c.raw
	}
	c.r = readerPool.Get().(*bufio.Reader)
	c.r.Reset(flushReader{c, in})
	c.idle.L = &c.mu
	for _, mc := range sess.MetaContexts {
		if mc.Name == protocol.MetaContextBaseAllocation {
			c.hasMeta, c.metaID = true, mc.ID
		}
	}
	return c
}

// serve runs the connection until the client disconnects, the connection
// breaks, or shutdown has drained it; then it waits for the requests in
// flight and closes.
func (c *conn) serve() {
	defer close(c.done)
	c.log.Info("connected", "structured", c.structured, "base_allocation", c.hasMeta)
	err := c.readLoop()
	c.flush()
	c.r.Reset(nil) // the read loop is over: nothing reads c.r any more
	readerPool.Put(c.r)
	c.waitIdle()
	c.srv.sem.leave(c.share)
	c.nc.Close()
	switch {
	case errors.Is(err, errDisconnect):
		c.log.Info("disconnected by client")
	case errors.Is(err, io.EOF), c.broken.Load():
		c.log.Info("connection closed")
	case c.isShutting():
		c.log.Info("closed at shutdown", "err", err)
	default:
		c.log.Warn("connection dropped", "err", err)
	}
}

// begin counts a request in flight; it fails once shutdown began.
func (c *conn) begin() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shutting {
		return false
	}
	c.inflight++
	return true
}

func (c *conn) isShutting() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.shutting
}

// end marks a request finished.
func (c *conn) end() {
	c.mu.Lock()
	c.inflight--
	if c.inflight == 0 {
		c.idle.Broadcast()
		if c.shutting {
			close(c.drained)
		}
	}
	c.mu.Unlock()
}

func (c *conn) waitIdle() {
	c.mu.Lock()
	for c.inflight > 0 {
		c.idle.Wait()
	}
	c.mu.Unlock()
}

// shutdown makes new requests fail with ESHUTDOWN; once the requests in
// flight are done the client has the grace period to send DISC before the
// connection is closed.
func (c *conn) shutdown() {
	c.mu.Lock()
	if c.shutting {
		c.mu.Unlock()
		return
	}
	c.shutting = true
	c.stallsAtShutdown()
	if c.inflight == 0 {
		close(c.drained)
	}
	c.mu.Unlock()
	go func() {
		select {
		case <-c.drained:
		case <-c.done:
			return
		}
		t := time.NewTimer(c.srv.lim.ShutdownGrace)
		defer t.Stop()
		select {
		case <-t.C:
			c.log.Info("closing after shutdown grace period")
			c.mu.Lock()
			c.readClosed = true
			c.nc.SetReadDeadline(time.Unix(1, 0))
			c.mu.Unlock()
		case <-c.done:
		}
	}()
}
