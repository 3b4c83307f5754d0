package server

import (
	"fmt"

	"github.com/nbdboot/nbdboot/protocol"
)

// The commands that change data: WRITE, TRIM and WRITE_ZEROES. With FUA
// each is followed by fdatasync before it is answered.

func (c *conn) cmdWrite(req protocol.Request, data []byte) error {
	if c.abl.fua != nil && req.Flags&protocol.CmdFlagFUA != 0 {
		if err := c.abl.fua.WriteAtFUA(data, int64(req.Offset)); err != nil {
			return fmt.Errorf("write %d bytes with FUA at %d: %w", len(data), req.Offset, err)
		}
		return nil
	}
	if _, err := c.be.WriteAt(data, int64(req.Offset)); err != nil {
		return fmt.Errorf("write %d bytes at %d: %w", len(data), req.Offset, err)
	}
	return c.fua(req)
}

func (c *conn) cmdTrim(req protocol.Request) error {
	if err := c.be.Trim(int64(req.Offset), int64(req.Length)); err != nil {
		return fmt.Errorf("trim %d bytes at %d: %w", req.Length, req.Offset, err)
	}
	return c.fua(req)
}

func (c *conn) cmdWriteZeroes(req protocol.Request) error {
	noHole := req.Flags&protocol.CmdFlagNoHole != 0
	fast := req.Flags&protocol.CmdFlagFastZero != 0
	if err := c.be.Zero(int64(req.Offset), int64(req.Length), noHole, fast); err != nil {
		return fmt.Errorf("zero %d bytes at %d: %w", req.Length, req.Offset, err)
	}
	return c.fua(req)
}

func (c *conn) fua(req protocol.Request) error {
	if req.Flags&protocol.CmdFlagFUA == 0 {
		return nil
	}
	if err := c.be.Sync(); err != nil {
		return fmt.Errorf("sync for FUA: %w", err)
	}
	return nil
}
