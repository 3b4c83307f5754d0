package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

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
var errWouldBlock = errors.New("data not in the page cache")

// nowaitReader is a backend that can read from its cache without waiting.
type nowaitReader interface {
	ReadAtNoWait(p []byte, off int64) (int, error)
}

// maxInline bounds the payload of a request served on the read loop.
const maxInline = 1 << 20

// nowaitOf finds the non-blocking reader under be (reads pass through
// the fence unchanged), or nil.
func nowaitOf(be Backend) nowaitReader {
	switch b := be.(type) {
	case nowaitReader:
		return b
	case *fenceMember:
		return nowaitOf(b.Backend)
	case *fencedFUA:
		return nowaitOf(b.Backend)
	}
	return nil
}

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
	if c.nowait == nil || req.Length > maxInline {
		return false, nil
	}
	switch req.Type {
	case protocol.CmdRead:
		if req.Length == 0 || (c.structured && req.Flags&protocol.CmdFlagDF == 0 && c.be.MaybeSparse()) {
			return false, nil
		}
		c.readInline(req)
		return true, nil
	case protocol.CmdWrite:
		if req.Flags&protocol.CmdFlagFUA != 0 {
			return false, nil
		}
		return true, c.writeInline(req)
	}
	return false, nil
}

// readInline reads from the cache and queues the reply; on a cache miss
// the request goes to a goroutine that waits for the disk.
func (c *conn) readInline(req protocol.Request) {
	held := int64(req.Length)
	c.take(held)
	buf := getBuf(int(req.Length))
	n, err := c.nowait.ReadAtNoWait(*buf, int64(req.Offset))
	if err != nil || n < len(*buf) {
		putBuf(buf)
		go c.serveRequest(req, nil, func() { c.release(nil, held) })
		return
	}
	c.queueData(req, buf, held)
}

// writeInline reads a WRITE's payload, writes it and queues the reply.
// The payload's bytes are given back as soon as it is written.
func (c *conn) writeInline(req protocol.Request) error {
	held := int64(req.Length)
	c.take(held)
	buf := getBuf(int(req.Length))
	if _, err := io.ReadFull(c.r, *buf); err != nil {
		c.release(buf, held)
		return fmt.Errorf("read WRITE payload of %d bytes: %w", req.Length, err)
	}
	err := c.cmdWrite(req, *buf)
	putBuf(buf)
	c.srv.sem.release(held)
	if err == nil {
		c.queueOK(req)
		return nil
	}
	c.answer(req, err, func() { c.release(nil, 0) }, true)
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
	if !c.srv.sem.tryAcquire(held) {
		c.flush()
		c.srv.sem.acquire(held)
	}
}

// reply is a pooled reply of the read loop: its header and buffers, and
// the payload buffer and bytes to give back once it has been sent, so
// that a request served on the loop allocates nothing.
type reply struct {
	hdr  [protocol.ChunkHeaderSize + 8]byte
	bufs [2][]byte
	buf  *[]byte
	held int64
}

var replyPool = sync.Pool{New: func() any { return new(reply) }}

// releaseReply gives back what a pooled reply's request held.
func (c *conn) releaseReply(r *reply) {
	c.release(r.buf, r.held)
	*r = reply{}
	replyPool.Put(r)
}

// queueData queues the reply to a READ read whole into *buf: a simple
// reply, or one final OFFSET_DATA chunk.
func (c *conn) queueData(req protocol.Request, buf *[]byte, held int64) {
	r := replyPool.Get().(*reply)
	r.buf, r.held = buf, held
	var h []byte
	if !c.structured {
		h = protocol.AppendSimpleReply(r.hdr[:0], 0, req.Cookie)
	} else {
		h = protocol.AppendChunk(r.hdr[:0], protocol.Chunk{
			Flags: protocol.ChunkFlagDone, Type: protocol.ChunkOffsetData, Cookie: req.Cookie, Length: uint32(8 + len(*buf))})
		h = binary.BigEndian.AppendUint64(h, req.Offset)
	}
	r.bufs = [2][]byte{h, *buf}
	c.enqueueThen(r.bufs[:], sent{r: r})
}

// queueOK queues a request's OK reply.
func (c *conn) queueOK(req protocol.Request) {
	r := replyPool.Get().(*reply)
	r.bufs[0] = protocol.AppendSimpleReply(r.hdr[:0], 0, req.Cookie)
	c.enqueueThen(r.bufs[:1], sent{r: r})
}
