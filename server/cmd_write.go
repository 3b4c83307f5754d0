package server

import (
	"fmt"

	"github.com/nbdboot/nbdboot/protocol"
)

// The commands that change data: WRITE, TRIM and WRITE_ZEROES. With FUA
// each is followed by fdatasync before it is answered.

// cmdWrite writes a WRITE's payload, given in consecutive parts (one,
// or a sliced payload's slices).
func (c *conn) cmdWrite(req protocol.Request, parts ...[]byte) error {
	if c.abl.fua != nil && req.Flags&protocol.CmdFlagFUA != 0 && len(parts) == 1 {
		if err := c.abl.fua.WriteAtFUA(parts[0], int64(req.Offset)); err != nil {
			return fmt.Errorf("write %d bytes with FUA at %d: %w", len(parts[0]), req.Offset, err)
		}
		return nil
	}
	off := int64(req.Offset)
	for _, p := range parts {
		if _, err := c.be.WriteAt(p, off); err != nil {
			return fmt.Errorf("write %d bytes at %d: %w", len(p), off, err)
		}
		off += int64(len(p))
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
