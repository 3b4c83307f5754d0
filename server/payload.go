package server

import (
	"fmt"

	"github.com/nbdboot/nbdboot/protocol"
)

// Large WRITE payloads, taken in slices as they arrive. A WRITE of at
// most paySlice bytes takes its payload's bytes from the budget when its
// header arrives (a connection holds at most one such slice it has not
// received yet). A larger one is read slice by slice: each slice's bytes
// are taken, and its buffer got, just before it is read, so a connection
// that sent a 32 MiB header and one byte holds one slice, not 32 MiB, and
// what a stalled payload holds is what its client actually sent. Slices
// end at multiples of paySlice in the export, so no 4 KiB block is split
// between two writes. The payload's bytes are given back once written,
// before the reply is sent.

// paySlice is the unit in which large payloads are taken and buffered.
const paySlice = 1 << 20

// slicedPayload is a large WRITE's payload: buffers of at most paySlice
// bytes, in order, each holding its length in budget bytes.
type slicedPayload struct {
	bufs []*[]byte
}

// readSliced reads req's payload slice by slice, taking each slice's
// bytes from the budget first.
func (c *conn) readSliced(req protocol.Request) (*slicedPayload, error) {
	turn := c.srv.sem.startPayload()
	defer c.srv.sem.endPayload(turn)
	p := &slicedPayload{bufs: make([]*[]byte, 0, (req.Length+paySlice-1)/paySlice+1)}
	for off, end := req.Offset, req.Offset+uint64(req.Length); off < end; {
		n := min(end, (off/paySlice+1)*paySlice) - off
		c.takeBytes(int64(n), turn)
		b := getBuf(int(n))
		p.bufs = append(p.bufs, b)
		if err := c.readPayload(*b); err != nil {
			c.freeSliced(p)
			return nil, fmt.Errorf("read WRITE payload of %d bytes at %d: %w", req.Length, off, err)
		}
		off += n
	}
	return p, nil
}

// freeSliced gives back a sliced payload's buffers and bytes, slice by
// slice as they were taken (release caps what it gives back at the
// budget, as acquire caps what it takes).
func (c *conn) freeSliced(p *slicedPayload) {
	for _, b := range p.bufs {
		c.srv.sem.release(c.share, int64(len(*b)))
		putBuf(b)
	}
}

// serveSliced writes a sliced payload, gives it back and answers.
func (c *conn) serveSliced(req protocol.Request, p *slicedPayload) {
	parts := make([][]byte, len(p.bufs))
	for i, b := range p.bufs {
		parts[i] = *b
	}
	err := c.cmdWrite(req, parts...)
	c.freeSliced(p)
	c.answer(newReply(nil, 0, true), req, err, false)
}
