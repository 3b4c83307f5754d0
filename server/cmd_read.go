package server

import (
	"fmt"
	"io"

	"github.com/nbdboot/nbdboot/protocol"
)

// One READ, from the socket to pread and back: the read loop checks it
// (reader.go) and, when the backend can read without waiting, tries it on
// the loop (readInline in inline.go); otherwise, or when that would wait,
// a goroutine runs cmdRead. Both split the range into data and holes
// (readExtents), read the data runs into one pooled buffer (readRuns),
// and build the reply with conn.read (reply.go), the only READ reply
// builder; the writer (writer.go) sends it and gives the buffer back. A
// large READ whose data the page cache holds is sent by the read loop
// from the file's mapping instead, without a buffer (readMapped,
// mapped.go).

// maxReadChunks bounds the data and hole chunks of one structured READ;
// beyond it the rest is sent as data.
const maxReadChunks = 32

// cmdRead serves a READ on a goroutine, waiting for the disk if it must.
// It reads the whole range before a byte of the reply is sent, so a
// failed read becomes an error reply, never a half-sent success.
func (c *conn) cmdRead(req protocol.Request, held int64) {
	buf := getBuf(int(req.Length))
	r := newReply(buf, held, true)
	exts := c.readExtents(req)
	if err := c.readRuns(*buf, int64(req.Offset), exts, false); err != nil {
		c.log.Warn("read failed", "offset", req.Offset, "length", req.Length, "err", err)
		r.payload = nil
		putBuf(buf)
		c.send(c.fail(r, req, errnoOf(err), "read failed"))
		return
	}
	c.send(c.read(r, req, r.single(*buf), exts))
}

// readExtents splits a structured READ into data and holes, unless DF
// forbids fragments or the backend has no holes: then it is one data run
// (nil). The runs cover the range exactly.
func (c *conn) readExtents(req protocol.Request) []protocol.Extent {
	if !c.splits(req) {
		return nil
	}
	exts, err := c.be.Extents(int64(req.Offset), int64(req.Length), maxReadChunks)
	if err != nil {
		return nil
	}
	return coverRead(req, exts)
}

// readExtentsNoWait is readExtents from memory, for the read loop
// (c.exts is its scratch space); false when that would wait.
func (c *conn) readExtentsNoWait(req protocol.Request) ([]protocol.Extent, bool) {
	if !c.splits(req) {
		return nil, true
	}
	if c.abl.extents == nil {
		return nil, false
	}
	exts, ok := c.abl.extents.ExtentsNoWait(c.exts[:0], int64(req.Offset), int64(req.Length), maxReadChunks)
	if !ok {
		return nil, false
	}
	return coverRead(req, exts), true
}

// splits reports whether a READ is worth splitting into data and holes.
func (c *conn) splits(req protocol.Request) bool {
	return c.structured && req.Length > 0 && req.Flags&protocol.CmdFlagDF == 0 && c.be.MaybeSparse()
}

// minHoleChunk is the shortest hole sent as a hole chunk: a hole chunk
// (32 bytes) that splits a data chunk (28 more) saves nothing on less.
const minHoleChunk = 64

// coverRead makes the runs of a READ cover it exactly: a shortfall is
// data, and holes too short to save bytes are sent as data. It returns
// nil (one data run) when no hole remains.
func coverRead(req protocol.Request, exts []protocol.Extent) []protocol.Extent {
	var covered int64
	holes := false
	out := exts[:0] // rewritten in place, merging
	for _, e := range exts {
		covered += int64(e.Length)
		if e.Zero() && e.Length < minHoleChunk {
			e.Flags = 0
		}
		holes = holes || e.Zero()
		out = protocol.AddExtent(out, int64(e.Length), e.Flags)
	}
	if !holes {
		return nil
	}
	if rest := int64(req.Length) - covered; rest > 0 {
		out = protocol.AddExtent(out, rest, 0)
	}
	return out
}

// readRuns reads the data runs of exts (nil: all of data) into data, the
// buffer of the range at off. With nowait it reads only what it can
// without waiting and fails with errWouldBlock otherwise.
func (c *conn) readRuns(data []byte, off int64, exts []protocol.Extent, nowait bool) error {
	if exts == nil {
		return c.readFull(data, off, nowait)
	}
	pos := 0
	for _, e := range exts {
		n := int(e.Length)
		if !e.Zero() {
			if err := c.readFull(data[pos:pos+n], off+int64(pos), nowait); err != nil {
				return err
			}
		}
		pos += n
	}
	return nil
}

// readFull reads len(p) bytes at off; a short read (the file shrank
// under us) is an error, and so is any read that would wait with nowait.
func (c *conn) readFull(p []byte, off int64, nowait bool) error {
	if len(p) == 0 {
		return nil
	}
	var n int
	var err error
	if nowait {
		n, err = c.abl.nowait.ReadAtNoWait(p, off)
		if err != nil || n < len(p) {
			return errWouldBlock
		}
		return nil
	}
	n, err = c.be.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %d bytes at %d: %w", len(p), off, err)
}
