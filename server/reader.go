package server

import (
	"errors"
	"fmt"
	"io"

	"github.com/nbdboot/nbdboot/protocol"
)

// errDisconnect ends the read loop on NBD_CMD_DISC.
var errDisconnect = errors.New("client sent DISC")

// readLoop reads requests until DISC, EOF or a protocol violation. Every
// request is checked here; a good one is served on the loop if it is
// cheap (inline.go), else dispatched to its own goroutine (a WRITE once
// its whole payload is in, a large one read in slices: payload.go); a bad one is answered at once (a WRITE's
// payload read and discarded first) and the loop goes on.
func (c *conn) readLoop() error {
	var hdr [protocol.RequestHeaderSize]byte
	for {
		req, err := protocol.ReadRequest(c.r, hdr[:])
		if err != nil {
			if errors.Is(err, protocol.ErrBadMagic) {
				return fmt.Errorf("request: %w", err)
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("request header: %w", err)
			}
			return err
		}
		if req.Type == protocol.CmdDisc {
			return errDisconnect
		}
		if err := c.dispatch(req); err != nil {
			return err
		}
	}
}

// dispatch checks one request and serves it or answers its error.
func (c *conn) dispatch(req protocol.Request) error {
	errno := c.check(req)
	if errno == 0 && !c.begin() {
		errno = protocol.ESHUTDOWN
	}
	if errno != 0 {
		if req.Type == protocol.CmdWrite {
			if err := c.discardPayload(int64(req.Length)); err != nil {
				return fmt.Errorf("discard WRITE payload: %w", err)
			}
		}
		c.log.Debug("request refused", "cmd", protocol.CommandName(req.Type), "offset", req.Offset,
			"length", req.Length, "flags", req.Flags, "errno", errno)
		c.send(c.fail(newReply(nil, 0, false), req, errno, ""))
		return nil
	}
	if ok, err := c.tryInline(req); ok || err != nil {
		return err
	}
	if req.Type == protocol.CmdWrite && req.Length > paySlice {
		c.take(0)
		p, err := c.readSliced(req)
		if err != nil {
			c.release(nil, 0)
			return err
		}
		go c.serveSliced(req, p)
		return nil
	}
	var held int64
	if req.Type == protocol.CmdRead || req.Type == protocol.CmdWrite {
		held = int64(req.Length)
	}
	c.take(held)
	var payload *[]byte
	if req.Type == protocol.CmdWrite {
		payload = getBuf(int(req.Length))
		if err := c.readPayload(*payload); err != nil {
			c.release(payload, held)
			return fmt.Errorf("read WRITE payload of %d bytes: %w", req.Length, err)
		}
	}
	go c.serveRequest(req, payload, held)
	return nil
}

// release gives back what dispatch took for a request, once its reply
// has been sent.
func (c *conn) release(payload *[]byte, held int64) {
	if payload != nil {
		putBuf(payload)
	}
	c.srv.sem.release(c.share, held)
	<-c.slots
	c.end()
}

// check returns the error the spec gives a request, or 0 when it is good.
func (c *conn) check(req protocol.Request) uint32 {
	allowed := protocol.CmdFlagFUA // valid on every command
	switch req.Type {
	case protocol.CmdRead:
		if c.structured {
			allowed |= protocol.CmdFlagDF
		}
	case protocol.CmdWriteZeroes:
		allowed |= protocol.CmdFlagNoHole | protocol.CmdFlagFastZero
	case protocol.CmdBlockStatus:
		allowed |= protocol.CmdFlagReqOne
	case protocol.CmdWrite, protocol.CmdFlush, protocol.CmdTrim, protocol.CmdCache:
	default:
		return protocol.EINVAL // unknown command
	}
	if req.Flags&^allowed != 0 {
		return protocol.EINVAL
	}
	switch req.Type {
	case protocol.CmdWrite, protocol.CmdTrim, protocol.CmdWriteZeroes:
		if c.exp.ReadOnly {
			return protocol.EPERM
		}
	}
	switch req.Type {
	case protocol.CmdFlush:
		if req.Offset != 0 || req.Length != 0 {
			return protocol.EINVAL
		}
		return 0
	case protocol.CmdRead, protocol.CmdWrite:
		if req.Length > protocol.MaxPayload {
			return protocol.EINVAL
		}
	case protocol.CmdBlockStatus:
		if !c.hasMeta || req.Length == 0 {
			return protocol.EINVAL
		}
	}
	if req.Offset > c.size || uint64(req.Length) > c.size-req.Offset {
		if req.Type == protocol.CmdWrite || req.Type == protocol.CmdWriteZeroes {
			return protocol.ENOSPC
		}
		return protocol.EINVAL
	}
	return 0
}
