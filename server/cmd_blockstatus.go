package server

import (
	"github.com/nbdboot/nbdboot/protocol"
)

// maxStatusExtents bounds the descriptors of one BLOCK_STATUS reply.
const maxStatusExtents = 1024

// cmdBlockStatus answers base:allocation from the backend's extents: one
// BLOCK_STATUS chunk; one extent with REQ_ONE.
// The read loop answers it itself when the backend knows the range from
// memory (statusInline in inline.go).
func (c *conn) cmdBlockStatus(req protocol.Request) {
	r := newReply(nil, 0, true)
	exts, err := c.be.Extents(int64(req.Offset), int64(req.Length), statusMax(req))
	if err != nil {
		c.log.Warn("block status failed", "offset", req.Offset, "length", req.Length, "err", err)
		c.send(c.fail(r, req, errnoOf(err), "block status failed"))
		return
	}
	c.send(c.status(r, req, exts))
}

// statusMax is the most descriptors a BLOCK_STATUS reply may carry.
func statusMax(req protocol.Request) int {
	if req.Flags&protocol.CmdFlagReqOne != 0 {
		return 1
	}
	return maxStatusExtents
}
