package server

import (
	"encoding/binary"
	"net"
	"time"

	"github.com/nbdboot/nbdboot/protocol"
)

// send queues one whole reply (header and payload buffers) and returns.
// Replies never interleave: the first goroutine to find the writer idle
// becomes the writer and sends everything queued, its own reply and those
// queued meanwhile, with one writev per batch, so that many small replies
// cost few system calls. done, if not nil, runs once the reply has left
// (or the connection broke): it returns buffers and request slots. A
// failed write breaks the connection, which ends the read loop.
func (c *conn) send(bufs net.Buffers, done func()) {
	c.push(bufs, sent{fn: done}, true)
}

// sent is what to do once a reply has left: run fn, or give back the
// pooled reply r.
type sent struct {
	fn func()
	r  *reply
}

// push queues bufs and, with write, sends the queue unless another
// goroutine is sending it.
func (c *conn) push(bufs net.Buffers, then sent, write bool) {
	c.wmu.Lock()
	c.queue = append(c.queue, bufs...)
	if then.fn != nil || then.r != nil {
		c.dones = append(c.dones, then)
	}
	if c.writing || !write {
		c.wmu.Unlock()
		return
	}
	c.writing = true
	for len(c.queue) > 0 {
		batch, dones := c.queue, c.dones
		c.queue, c.dones = c.spareQueue[:0], c.spareDones[:0]
		c.wmu.Unlock()
		c.write(batch)
		for _, d := range dones {
			if d.r != nil {
				c.releaseReply(d.r)
			} else {
				d.fn()
			}
		}
		clear(batch)
		clear(dones)
		c.wmu.Lock()
		c.spareQueue, c.spareDones = batch[:0], dones[:0]
	}
	c.writing = false
	c.wmu.Unlock()
}

// write sends a batch of buffers unless the connection is broken.
func (c *conn) write(batch net.Buffers) {
	if c.broken.Load() {
		return
	}
	if t := c.srv.lim.ReplyTimeout; t > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(t))
	}
	var err error
	if c.raw != nil {
		err = c.raw.writeBuffers(batch)
	} else {
		bufs := batch // WriteTo consumes its receiver
		_, err = bufs.WriteTo(c.w)
	}
	if err != nil {
		c.broken.Store(true)
		c.log.Info("write reply failed; closing", "err", err)
		c.nc.Close()
	}
}

// enqueue queues a reply from the read loop without sending it; the read
// loop's flush sends it, before the loop next waits. Only the read loop
// calls it.
func (c *conn) enqueue(bufs net.Buffers, done func()) {
	c.enqueueThen(bufs, sent{fn: done})
}

func (c *conn) enqueueThen(bufs net.Buffers, then sent) {
	c.push(bufs, then, false)
	c.queued++
	for _, b := range bufs {
		c.queuedBytes += len(b)
	}
	if c.queued >= maxQueued || c.queuedBytes >= maxQueuedBytes {
		c.flush()
	}
}

// maxQueued and maxQueuedBytes bound the replies the read loop queues
// before sending them: large READs are sent as they are read, so that few
// of their buffers are held at once (the socket buffers them instead).
const (
	maxQueued      = 64
	maxQueuedBytes = 256 << 10
)

// flush sends the replies the read loop queued, unless another goroutine
// is sending already (it sends them too). Only the read loop calls it.
func (c *conn) flush() {
	if c.queued == 0 {
		return
	}
	c.queued, c.queuedBytes = 0, 0
	c.send(nil, nil)
}

// replyOK answers a request without payload.
func (c *conn) replyOK(req protocol.Request, done func()) {
	c.send(okReply(req), done)
}

func okReply(req protocol.Request) net.Buffers {
	return net.Buffers{protocol.AppendSimpleReply(make([]byte, 0, protocol.SimpleReplyHeaderSize), 0, req.Cookie)}
}

// replyError answers a failed request.
func (c *conn) replyError(req protocol.Request, errno uint32, msg string, done func()) {
	c.send(c.errorReply(req, errno, msg), done)
}

// errorReply is a simple reply, or with structured replies an
// NBD_REPLY_TYPE_ERROR chunk for READ and BLOCK_STATUS (a READ must not
// get a simple reply then).
func (c *conn) errorReply(req protocol.Request, errno uint32, msg string) net.Buffers {
	if !c.structured || (req.Type != protocol.CmdRead && req.Type != protocol.CmdBlockStatus) {
		return net.Buffers{protocol.AppendSimpleReply(make([]byte, 0, protocol.SimpleReplyHeaderSize), errno, req.Cookie)}
	}
	return net.Buffers{appendErrorChunk(nil, req.Cookie, errno, msg)}
}

// appendErrorChunk appends a final NBD_REPLY_TYPE_ERROR chunk: u32 error,
// u16 message length, message.
func appendErrorChunk(b []byte, cookie uint64, errno uint32, msg string) []byte {
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	b = protocol.AppendChunk(b, protocol.Chunk{
		Flags: protocol.ChunkFlagDone, Type: protocol.ChunkError, Cookie: cookie, Length: uint32(6 + len(msg)),
	})
	b = binary.BigEndian.AppendUint32(b, errno)
	b = binary.BigEndian.AppendUint16(b, uint16(len(msg)))
	return append(b, msg...)
}
