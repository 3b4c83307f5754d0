package server

import (
	"io"
	"time"
)

// Deadlines on a connection's stalls. Between requests a client may be
// idle for as long as it likes (TCP keepalive reaps a vanished one), but
// once a WRITE's header is in, its payload must keep coming: every read of
// it must make progress within the stall timeout, or the connection is
// ended (only that connection: what it held is given back). A reply must
// leave within the reply timeout (writer.go). Shutdown sets both at once:
// a payload still arriving and a reply still leaving get until the
// shutdown grace period ends, so a half-sent payload or a client that
// stopped reading cannot hold the server's exit.

// readPayload reads a WRITE's payload into p under the stall deadline.
func (c *conn) readPayload(p []byte) error {
	if c.r.Buffered() >= len(p) {
		_, err := io.ReadFull(c.r, p) // all in memory: cannot stall
		return err
	}
	c.beginPayload()
	defer c.endPayload()
	for n := 0; n < len(p); {
		if c.r.Buffered() == 0 {
			c.armPayload()
		}
		k, err := c.r.Read(p[n:])
		n += k
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// discardPayload reads and drops n payload bytes under the stall deadline.
func (c *conn) discardPayload(n int64) error {
	c.beginPayload()
	defer c.endPayload()
	for n > 0 {
		if c.r.Buffered() == 0 {
			c.armPayload()
		}
		k, err := c.r.Discard(int(min(n, int64(c.r.Size()))))
		n -= int64(k)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

func (c *conn) beginPayload() {
	c.mu.Lock()
	c.inPayload = true
	c.mu.Unlock()
}

// endPayload lifts the stall deadline, unless the shutdown grace period
// has closed the connection's reading meanwhile.
func (c *conn) endPayload() {
	c.mu.Lock()
	c.inPayload = false
	if !c.readClosed {
		c.nc.SetReadDeadline(time.Time{})
	}
	c.mu.Unlock()
}

// armPayload sets the deadline of the next read of a payload.
func (c *conn) armPayload() {
	c.nc.SetReadDeadline(time.Now().Add(c.stallLimit(c.srv.lim.StallTimeout)))
}

// replyDeadline is the deadline of a reply write that begins now.
func (c *conn) replyDeadline() time.Time {
	t := c.stallLimit(c.srv.lim.ReplyTimeout)
	if t == 0 {
		return time.Time{}
	}
	return time.Now().Add(t)
}

// stallLimit is timeout (0: none), shortened to the shutdown grace
// period once shutdown began.
func (c *conn) stallLimit(timeout time.Duration) time.Duration {
	if g := time.Duration(c.shutdownGrace.Load()); g > 0 && (timeout == 0 || g < timeout) {
		return g
	}
	return timeout
}

// stallsAtShutdown shortens the deadlines of the payload being read and
// the reply being sent to the shutdown grace period; the caller holds
// c.mu.
func (c *conn) stallsAtShutdown() {
	g := max(c.srv.lim.ShutdownGrace, time.Nanosecond)
	c.shutdownGrace.Store(int64(g))
	by := time.Now().Add(g)
	if c.inPayload {
		c.nc.SetReadDeadline(by)
	}
	c.wmu.Lock()
	if c.writing {
		c.nc.SetWriteDeadline(by)
	}
	c.wmu.Unlock()
}
