package server

import (
	"net"
	"slices"
	"sync"

	"github.com/nbdboot/nbdboot/protocol"
)

// reply is one reply on its way out: its headers (encoded by package
// protocol), the buffers sent, headers and payload data, in order, and
// what its request holds, given back once the reply has left (or the
// connection broke). Replies are pooled, so that a request served on the
// read loop allocates nothing.
type reply struct {
	hdr  []byte      // the reply's headers; bufs alias it
	bufs net.Buffers // what is sent
	// payload is a pooled buffer (READ data, WRITE payload) to give back.
	payload *[]byte
	held    int64 // payload bytes held in the server-wide semaphore
	// counted: the request holds a slot and a begin; give them back.
	counted bool
	// segs holds the slices of a READ's data: one buffer, or what a
	// Lender lent; lender, when set, holds [lentOff, lentOff+lentN)
	// until the reply has left (Unlend).
	segs           [][]byte
	lender         Lender
	lentOff, lentN int64
}

var replyPool = sync.Pool{New: func() any { return &reply{hdr: make([]byte, 0, 64)} }}

// newReply takes a pooled reply for a request that holds payload and
// held bytes and, if counted, a slot.
func newReply(payload *[]byte, held int64, counted bool) *reply {
	r := replyPool.Get().(*reply)
	r.payload, r.held, r.counted = payload, held, counted
	return r
}

// headers makes room for n bytes of headers; the builders append no more
// than they asked for, so that bufs keep aliasing hdr.
func (r *reply) headers(n int) {
	r.hdr = slices.Grow(r.hdr[:0], n)
}

// put appends a header (already in r.hdr from mark on) and a payload
// buffer (if any) to the buffers sent.
func (r *reply) put(mark int, data []byte) {
	r.bufs = append(r.bufs, r.hdr[mark:len(r.hdr):len(r.hdr)])
	if len(data) > 0 {
		r.bufs = append(r.bufs, data)
	}
}

// single makes buf the READ data of the reply (its only slice).
func (r *reply) single(buf []byte) [][]byte {
	r.segs = append(r.segs[:0], buf)
	return r.segs
}

// dataCursor walks the slices of a READ's data in order.
type dataCursor struct {
	segs [][]byte
	i    int // the slice at hand
	at   int // the offset in it
}

// putData appends a header (already in r.hdr from mark on) and the next
// n bytes of the data to the buffers sent.
func (r *reply) putData(mark int, d *dataCursor, n int) {
	r.bufs = append(r.bufs, r.hdr[mark:len(r.hdr):len(r.hdr)])
	d.walk(n, func(p []byte) { r.bufs = append(r.bufs, p) })
}

// skip passes over the next n bytes of the data.
func (d *dataCursor) skip(n int) { d.walk(n, func([]byte) {}) }

// walk hands the next n bytes of the data to fn, slice by slice.
func (d *dataCursor) walk(n int, fn func([]byte)) {
	for n > 0 {
		p := d.segs[d.i][d.at:]
		k := min(n, len(p))
		fn(p[:k:k])
		n -= k
		if d.at += k; d.at == len(d.segs[d.i]) {
			d.i, d.at = d.i+1, 0
		}
	}
}

// finished gives back what the reply's request held, once it has left.
func (c *conn) finished(r *reply) {
	if r.counted {
		c.release(r.payload, r.held)
	} else if r.payload != nil {
		putBuf(r.payload)
	}
	if r.lender != nil {
		r.lender.Unlend(r.lentOff, r.lentN)
		r.lender = nil
	}
	clear(r.bufs)
	clear(r.segs)
	r.bufs, r.segs, r.hdr, r.payload = r.bufs[:0], r.segs[:0], r.hdr[:0], nil
	replyPool.Put(r)
}

// ok builds a request's OK reply: a simple reply, also under structured
// replies (the spec allows it for every command but READ and
// BLOCK_STATUS with data).
func (c *conn) ok(r *reply, req protocol.Request) *reply {
	r.headers(protocol.SimpleReplyHeaderSize)
	r.hdr = protocol.AppendSimpleReply(r.hdr, 0, req.Cookie)
	r.put(0, nil)
	return r
}

// maxErrorMessage bounds the message of an error chunk.
const maxErrorMessage = 1024

// fail builds a failed request's reply: a simple reply, or with
// structured replies an ERROR chunk for READ and BLOCK_STATUS (a READ
// must not get a simple reply then).
func (c *conn) fail(r *reply, req protocol.Request, errno uint32, msg string) *reply {
	if !c.structured || (req.Type != protocol.CmdRead && req.Type != protocol.CmdBlockStatus) {
		r.headers(protocol.SimpleReplyHeaderSize)
		r.hdr = protocol.AppendSimpleReply(r.hdr, errno, req.Cookie)
	} else {
		msg = msg[:min(len(msg), maxErrorMessage)]
		r.headers(protocol.ChunkHeaderSize + protocol.ChunkErrorMinSize + len(msg))
		r.hdr = protocol.AppendErrorChunk(r.hdr, protocol.ChunkFlagDone, req.Cookie, protocol.ChunkErr{Errno: errno, Message: msg})
	}
	r.put(0, nil)
	return r
}

// read builds the reply to a READ whose range has been read into data
// (its data runs; its holes need not be), the slices of the range in
// order (a buffer, or what a Lender lent): a simple reply, or under
// structured replies an OFFSET_DATA chunk per data run and an
// OFFSET_HOLE chunk per hole of exts, the last one final. exts covers
// the range exactly; nil means one data run. This is the only READ reply.
func (c *conn) read(r *reply, req protocol.Request, data [][]byte, exts []protocol.Extent) *reply {
	d := dataCursor{segs: data}
	n := int(req.Length)
	switch {
	case !c.structured:
		r.headers(protocol.SimpleReplyHeaderSize)
		r.hdr = protocol.AppendSimpleReply(r.hdr, 0, req.Cookie)
		r.putData(0, &d, n)
		return r
	case n == 0:
		r.headers(protocol.ChunkHeaderSize)
		r.hdr = protocol.AppendNoneChunk(r.hdr, req.Cookie)
		r.put(0, nil)
		return r
	case exts == nil:
		r.headers(protocol.ChunkHeaderSize + protocol.OffsetDataPrefixSize)
		r.hdr = protocol.AppendOffsetDataHeader(r.hdr, protocol.ChunkFlagDone, req.Cookie, req.Offset, n)
		r.putData(0, &d, n)
		return r
	}
	r.headers(len(exts) * (protocol.ChunkHeaderSize + protocol.OffsetHoleSize))
	pos := 0
	for i, e := range exts {
		flags := uint16(0)
		if i == len(exts)-1 {
			flags = protocol.ChunkFlagDone
		}
		at, n, mark := req.Offset+uint64(pos), int(e.Length), len(r.hdr)
		if e.Zero() {
			r.hdr = protocol.AppendOffsetHoleChunk(r.hdr, flags, req.Cookie, at, e.Length)
			r.put(mark, nil)
			d.skip(n)
		} else {
			r.hdr = protocol.AppendOffsetDataHeader(r.hdr, flags, req.Cookie, at, n)
			r.putData(mark, &d, n)
		}
		pos += n
	}
	return r
}

// status builds a BLOCK_STATUS reply: one chunk for base:allocation
// describing exts, or, if there are none, the whole range with status 0
// (always safe).
func (c *conn) status(r *reply, req protocol.Request, exts []protocol.Extent) *reply {
	if len(exts) == 0 {
		exts = append(exts, protocol.Extent{Length: req.Length})
	}
	r.headers(protocol.ChunkHeaderSize + 4 + protocol.BlockStatusDescSize*len(exts))
	r.hdr = protocol.AppendBlockStatusChunk(r.hdr, protocol.ChunkFlagDone, req.Cookie, c.metaID, exts)
	r.put(0, nil)
	return r
}
