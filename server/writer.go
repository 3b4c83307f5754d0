package server

import (
	"encoding/binary"
	"net"
	"time"

	"github.com/nbdboot/nbdboot/protocol"
)

// send writes one whole reply (header and payload) with one writev. The
// writer mutex keeps replies from interleaving; a failed write breaks the
// connection, which ends the read loop.
func (c *conn) send(bufs net.Buffers) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.broken.Load() {
		return
	}
	if t := c.srv.lim.ReplyTimeout; t > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(t))
	}
	if _, err := bufs.WriteTo(c.w); err != nil {
		c.broken.Store(true)
		c.log.Info("write reply failed; closing", "err", err)
		c.nc.Close()
	}
}

// replyOK answers a request without payload.
func (c *conn) replyOK(req protocol.Request) {
	c.send(net.Buffers{protocol.AppendSimpleReply(make([]byte, 0, protocol.SimpleReplyHeaderSize), 0, req.Cookie)})
}

// replyError answers a failed request: a simple reply, or with structured
// replies an NBD_REPLY_TYPE_ERROR chunk for READ and BLOCK_STATUS (a READ
// must not get a simple reply then).
func (c *conn) replyError(req protocol.Request, errno uint32, msg string) {
	if !c.structured || (req.Type != protocol.CmdRead && req.Type != protocol.CmdBlockStatus) {
		c.send(net.Buffers{protocol.AppendSimpleReply(make([]byte, 0, protocol.SimpleReplyHeaderSize), errno, req.Cookie)})
		return
	}
	c.send(net.Buffers{appendErrorChunk(nil, req.Cookie, errno, msg)})
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
