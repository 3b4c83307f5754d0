package server

import "github.com/nbdboot/nbdboot/protocol"

// serveRequest runs one checked request and sends its reply; fin runs
// once the reply has left.
func (c *conn) serveRequest(req protocol.Request, payload *[]byte, fin func()) {
	switch req.Type {
	case protocol.CmdRead:
		c.cmdRead(req, fin)
		return
	case protocol.CmdBlockStatus:
		c.cmdBlockStatus(req, fin)
		return
	}
	var err error
	switch req.Type {
	case protocol.CmdWrite:
		err = c.cmdWrite(req, *payload)
	case protocol.CmdFlush:
		err = c.be.Sync()
	case protocol.CmdTrim:
		err = c.cmdTrim(req)
	case protocol.CmdWriteZeroes:
		err = c.cmdWriteZeroes(req)
	case protocol.CmdCache:
		err = c.be.Cache(int64(req.Offset), int64(req.Length))
	}
	c.answer(req, err, fin, false)
}

// answer replies to a request without payload data: OK, or the error's
// errno. With queued it queues the reply (read loop only), else sends it.
func (c *conn) answer(req protocol.Request, err error, fin func(), queued bool) {
	out := c.send
	if queued {
		out = c.enqueue
	}
	if err != nil {
		errno := errnoOf(err)
		if errno != protocol.ENOTSUP {
			c.log.Warn("request failed", "cmd", protocol.CommandName(req.Type), "offset", req.Offset,
				"length", req.Length, "err", err)
		}
		out(c.errorReply(req, errno, ""), fin)
		return
	}
	out(okReply(req), fin)
}
