package server

import (
	"github.com/nbdboot/nbdboot/protocol"
)

// maxStatusExtents bounds the descriptors of one BLOCK_STATUS reply.
const maxStatusExtents = 1024

// cmdBlockStatus answers base:allocation from the backend's extents: one
// BLOCK_STATUS chunk; one extent with REQ_ONE.
func (c *conn) cmdBlockStatus(req protocol.Request) {
	max := maxStatusExtents
	if req.Flags&protocol.CmdFlagReqOne != 0 {
		max = 1
	}
	r := newReply(nil, 0, true)
	exts, err := c.be.Extents(int64(req.Offset), int64(req.Length), max)
	if err != nil {
		c.log.Warn("block status failed", "offset", req.Offset, "length", req.Length, "err", err)
		c.send(c.fail(r, req, errnoOf(err), "block status failed"))
		return
	}
	if len(exts) == 0 { // a status of 0 is always safe
		exts = []protocol.Extent{{Length: req.Length}}
	}
	c.send(c.status(r, req, exts))
}
