package server

import (
	"fmt"
	"io"

	"github.com/nbdboot/nbdboot/internal/nowait"
	"github.com/nbdboot/nbdboot/protocol"
)

// Serving on the read loop. A goroutine per request costs scheduler hand-
// offs, stack growth and a reply write of its own. Most requests need
// none of that: a READ whose data is in the page cache, or a WRITE into
// it, takes a few microseconds. The read loop serves those itself and
// queues their replies; the queue is sent, in one writev, just before the
// loop would wait for more input (or for a slot or buffer bytes), so a
// lone reply is never delayed and replies to a burst of requests leave
// together. Whatever might wait for the disk — a READ of uncached data,
// FUA, FLUSH, TRIM, WRITE_ZEROES, a sparse structured READ, a backend
// other than a file — still runs on a goroutine of its own.

// errWouldBlock reports that a non-blocking read found its data uncached.
var errWouldBlock = nowait.ErrWouldBlock

// maxInline bounds the payload of a request served on the read loop.
const maxInline = 1 << 20

// flushReader sends the queued replies before each read from the client,
// which is when the read loop may wait.
type flushReader struct {
	c *conn
	r io.Reader
}

func (f flushReader) Read(p []byte) (int, error) {
	f.c.flush()
	return f.r.Read(p)
}

// tryInline serves a checked, begun request on the read loop if it is
// cheap; it reports whether it took the request.
func (c *conn) tryInline(req protocol.Request) (bool, error) {
	if c.abl.nowait == nil {
		return false, nil // a backend whose every read may wait
	}
	switch req.Type {
	case protocol.CmdRead:
		if req.Length == 0 || req.Length > maxInline {
			return false, nil
		}
		c.readInline(req)
		return true, nil
	case protocol.CmdWrite:
		if req.Flags&protocol.CmdFlagFUA != 0 || req.Length > maxInline {
			return false, nil
		}
		return true, c.writeInline(req)
	case protocol.CmdBlockStatus:
		return c.statusInline(req), nil
	}
	return false, nil
}

// statusInline answers a BLOCK_STATUS from memory if the backend knows
// the range; it reports whether it did.
func (c *conn) statusInline(req protocol.Request) bool {
	if c.abl.extents == nil {
		return false
	}
	exts, ok := c.abl.extents.ExtentsNoWait(c.statusExts[:0], int64(req.Offset), int64(req.Length), statusMax(req))
	if !ok {
		return false
	}
	c.statusExts = exts[:0]
	c.take(0)
	c.enqueue(c.status(newReply(nil, 0, true), req, exts))
	return true
}

// readInline splits the range into data and holes from memory, reads
// the data from the cache and queues the reply; when either would wait
// the request goes to a goroutine (cmdRead) that may.
func (c *conn) readInline(req protocol.Request) {
	held := int64(req.Length)
	c.take(held)
	exts, ok := c.readExtentsNoWait(req)
	if ok && c.readLent(req, held, exts) {
		return
	}
	buf := getBuf(int(req.Length))
	if !ok || c.readRuns(*buf, int64(req.Offset), exts, true) != nil {
		putBuf(buf)
		go c.cmdRead(req, held)
		return
	}
	r := newReply(buf, held, true)
	c.enqueue(c.read(r, req, r.single(*buf), exts))
}

// readLent queues a READ's reply with its range lent in place by the
// backend (mapped.go) when it is large, the reply is written by raw
// writev, and its data runs are all in the page cache; it reports
// whether it did. A reply whose lender holds the range (a copy-on-write
// overlay's block locks) is sent at once rather than queued: the read
// loop may next serve a WRITE that waits for those locks.
func (c *conn) readLent(req protocol.Request, held int64, exts []protocol.Extent) bool {
	if c.abl.lender == nil || c.raw == nil || req.Length < minMapped {
		return false
	}
	r := newReply(nil, held, true)
	off, n := int64(req.Offset), int64(req.Length)
	segs, hold, ok := c.abl.lender.Lend(r.segs[:0], off, n, exts)
	r.segs = segs
	if !ok {
		r.counted = false
		c.finished(r) // back to the pool; the request keeps what it holds
		return false
	}
	if hold {
		r.lender, r.lentOff, r.lentN = c.abl.lender, off, n
	}
	c.enqueue(c.read(r, req, segs, exts))
	if hold {
		c.flush()
	}
	return true
}

// writeInline reads a WRITE's payload, writes it and queues the reply.
// The payload's bytes are given back as soon as it is written.
func (c *conn) writeInline(req protocol.Request) error {
	held := int64(req.Length)
	c.take(held)
	buf := getBuf(int(req.Length))
	if err := c.readPayload(*buf); err != nil {
		c.release(buf, held)
		return fmt.Errorf("read WRITE payload of %d bytes: %w", req.Length, err)
	}
	err := c.cmdWrite(req, *buf)
	putBuf(buf)
	c.srv.sem.release(c.share, held)
	c.answer(newReply(nil, 0, true), req, err, true)
	return nil
}

// take holds a request slot and held payload bytes, sending the queued
// replies first if it has to wait for them (they may be what holds them).
func (c *conn) take(held int64) {
	select {
	case c.slots <- struct{}{}:
	default:
		c.flush()
		c.slots <- struct{}{}
	}
	c.takeBytes(held, nil)
}

// takeBytes holds n payload bytes (for a sliced payload's turn, or nil),
// sending the queued replies first if it has to wait for them.
func (c *conn) takeBytes(n int64, turn *payloadTurn) {
	if !c.srv.sem.tryAcquire(c.share, n, turn) {
		c.flush()
		c.srv.sem.acquire(c.share, n, turn)
	}
}
