package server

import (
	"encoding/binary"
	"net"

	"github.com/nbdboot/nbdboot/protocol"
)

// maxStatusExtents bounds the descriptors of one BLOCK_STATUS reply.
const maxStatusExtents = 1024

// cmdBlockStatus answers base:allocation from the backend's extents: one
// NBD_REPLY_TYPE_BLOCK_STATUS chunk, u32 context ID then (u32 length,
// u32 flags) per extent; one extent with REQ_ONE.
func (c *conn) cmdBlockStatus(req protocol.Request, fin func()) {
	max := maxStatusExtents
	if req.Flags&protocol.CmdFlagReqOne != 0 {
		max = 1
	}
	exts, err := c.be.Extents(int64(req.Offset), int64(req.Length), max)
	if err != nil {
		c.log.Warn("block status failed", "offset", req.Offset, "length", req.Length, "err", err)
		c.replyError(req, errnoOf(err), "block status failed", fin)
		return
	}
	if len(exts) == 0 { // a status of 0 is always safe
		exts = []Extent{{Length: int64(req.Length)}}
	}
	b := protocol.AppendChunk(make([]byte, 0, protocol.ChunkHeaderSize+4+8*len(exts)), protocol.Chunk{
		Flags: protocol.ChunkFlagDone, Type: protocol.ChunkBlockStatus, Cookie: req.Cookie,
		Length: uint32(4 + 8*len(exts)),
	})
	b = binary.BigEndian.AppendUint32(b, c.metaID)
	for _, e := range exts {
		var flags uint32
		if e.Hole {
			flags = protocol.StateHole | protocol.StateZero
		}
		b = binary.BigEndian.AppendUint32(b, uint32(e.Length))
		b = binary.BigEndian.AppendUint32(b, flags)
	}
	c.send(net.Buffers{b}, fin)
}
