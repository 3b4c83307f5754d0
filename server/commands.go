package server

import "github.com/nbdboot/nbdboot/protocol"

// serveRequest runs one checked request on its own goroutine and sends
// its reply; the reply gives back payload (a WRITE's), held payload bytes
// and the request's slot once it has left.
func (c *conn) serveRequest(req protocol.Request, payload *[]byte, held int64) {
	switch req.Type {
	case protocol.CmdRead:
		c.cmdRead(req, held)
		return
	case protocol.CmdBlockStatus:
		c.cmdBlockStatus(req)
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
	c.answer(newReply(payload, held, true), req, err, false)
}

// answer replies to a request without payload data: OK, or the error's
// errno. With queued it queues the reply (read loop only), else sends it.
func (c *conn) answer(r *reply, req protocol.Request, err error, queued bool) {
	if err != nil {
		errno := errnoOf(err)
		if errno != protocol.ENOTSUP {
			c.log.Warn("request failed", "cmd", protocol.CommandName(req.Type), "offset", req.Offset,
				"length", req.Length, "err", err)
		}
		r = c.fail(r, req, errno, "")
	} else {
		r = c.ok(r, req)
	}
	if queued {
		c.enqueue(r)
		return
	}
	c.send(r)
}
