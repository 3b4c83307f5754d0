package server

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"

	"github.com/nbdboot/nbdboot/protocol"
)

// maxReadChunks bounds the data and hole chunks of one structured READ;
// beyond it the rest is sent as data.
const maxReadChunks = 32

// cmdRead reads the whole range before a byte of the reply is sent, so a
// failed read becomes an error reply, never a half-sent success.
func (c *conn) cmdRead(req protocol.Request, fin func()) {
	n := int(req.Length)
	off := int64(req.Offset)
	buf := getBuf(n)
	done := func() { putBuf(buf); fin() }
	data := *buf
	if !c.structured {
		if err := c.readFull(data, off); err != nil {
			c.readFailed(req, err, done)
			return
		}
		c.send(c.dataReply(req, data), done)
		return
	}
	if n == 0 {
		c.send(net.Buffers{protocol.AppendChunk(nil, protocol.Chunk{Flags: protocol.ChunkFlagDone, Type: protocol.ChunkNone, Cookie: req.Cookie})}, done)
		return
	}
	exts := c.readExtents(req)
	bufs := make(net.Buffers, 0, 2*len(exts))
	pos := int64(0)
	for i, e := range exts {
		flags := uint16(0)
		if i == len(exts)-1 {
			flags = protocol.ChunkFlagDone
		}
		at := uint64(off + pos)
		if e.Hole {
			h := protocol.AppendChunk(make([]byte, 0, protocol.ChunkHeaderSize+12), protocol.Chunk{
				Flags: flags, Type: protocol.ChunkOffsetHole, Cookie: req.Cookie, Length: 12})
			h = binary.BigEndian.AppendUint64(h, at)
			h = binary.BigEndian.AppendUint32(h, uint32(e.Length))
			bufs = append(bufs, h)
		} else {
			part := data[pos : pos+e.Length]
			if err := c.readFull(part, off+pos); err != nil {
				c.readFailed(req, err, done)
				return
			}
			h := protocol.AppendChunk(make([]byte, 0, protocol.ChunkHeaderSize+8), protocol.Chunk{
				Flags: flags, Type: protocol.ChunkOffsetData, Cookie: req.Cookie, Length: uint32(8 + e.Length)})
			h = binary.BigEndian.AppendUint64(h, at)
			bufs = append(bufs, h, part)
		}
		pos += e.Length
	}
	c.send(bufs, done)
}

// dataReply is the reply to a READ whose whole range is data, read into
// data: a simple reply, or one final OFFSET_DATA chunk.
func (c *conn) dataReply(req protocol.Request, data []byte) net.Buffers {
	if !c.structured {
		return net.Buffers{protocol.AppendSimpleReply(make([]byte, 0, protocol.SimpleReplyHeaderSize), 0, req.Cookie), data}
	}
	h := protocol.AppendChunk(make([]byte, 0, protocol.ChunkHeaderSize+8), protocol.Chunk{
		Flags: protocol.ChunkFlagDone, Type: protocol.ChunkOffsetData, Cookie: req.Cookie, Length: uint32(8 + len(data))})
	h = binary.BigEndian.AppendUint64(h, req.Offset)
	return net.Buffers{h, data}
}

// readExtents splits a structured READ into data and holes, unless DF
// forbids fragments or the backend has no holes: then it is one data run.
func (c *conn) readExtents(req protocol.Request) []Extent {
	whole := []Extent{{Length: int64(req.Length)}}
	if req.Flags&protocol.CmdFlagDF != 0 || !c.be.MaybeSparse() {
		return whole
	}
	exts, err := c.be.Extents(int64(req.Offset), int64(req.Length), maxReadChunks)
	if err != nil || len(exts) == 0 {
		return whole
	}
	var covered int64
	for _, e := range exts {
		covered += e.Length
	}
	if rest := int64(req.Length) - covered; rest > 0 {
		if last := &exts[len(exts)-1]; !last.Hole {
			last.Length += rest
		} else {
			exts = append(exts, Extent{Length: rest})
		}
	}
	return exts
}

// readFull reads len(p) bytes at off; a short read (the file shrank
// under us) is an error.
func (c *conn) readFull(p []byte, off int64) error {
	n, err := c.be.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %d bytes at %d: %w", len(p), off, err)
}

func (c *conn) readFailed(req protocol.Request, err error, done func()) {
	c.log.Warn("read failed", "offset", req.Offset, "length", req.Length, "err", err)
	c.replyError(req, errnoOf(err), "read failed", done)
}
