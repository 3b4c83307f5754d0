package server

import (
	"net"
)

// send queues one whole reply and returns. Replies never interleave: the
// first goroutine to find the writer idle becomes the writer and sends
// everything queued, its own reply and those queued meanwhile, with one
// writev per batch, so that many small replies cost few system calls.
// Once a reply has left (or the connection broke) what its request held
// is given back. A failed write breaks the connection, which ends the
// read loop.
func (c *conn) send(r *reply) {
	c.push(r, true)
}

// push queues r (if not nil) and, with write, sends the queue unless
// another goroutine is sending it.
func (c *conn) push(r *reply, write bool) {
	c.wmu.Lock()
	if r != nil {
		c.queue = append(c.queue, r.bufs...)
		c.dones = append(c.dones, r)
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
			c.finished(d)
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
	c.nc.SetWriteDeadline(c.replyDeadline())
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
func (c *conn) enqueue(r *reply) {
	for _, b := range r.bufs { // before push: a writer may take r at once
		c.queuedBytes += len(b)
	}
	c.queued++
	c.push(r, false)
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
	c.push(nil, true)
}
