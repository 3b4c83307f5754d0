package nbdnl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// memDisk serves the NBD transmission phase (simple replies) from memory:
// what the kernel speaks once it holds a socket. The handshake is not
// needed, as the test hands the kernel a fresh socket pair.
type memDisk struct {
	mu   sync.Mutex
	data []byte
}

const (
	nbdRequestMagic = 0x25609513
	nbdReplyMagic   = 0x67446698
	nbdCmdRead      = 0
	nbdCmdWrite     = 1
	nbdCmdDisc      = 2
	nbdCmdFlush     = 3
	nbdCmdTrim      = 4
	nbdEINVAL       = 22
)

func (d *memDisk) readAt(off uint64, n int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]byte(nil), d.data[off:off+uint64(n)]...)
}

func (d *memDisk) writeAt(off uint64, b []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	copy(d.data[off:], b)
}

// serve answers requests on rw until NBD_CMD_DISC (nil) or an error.
func (d *memDisk) serve(rw io.ReadWriter) error {
	var hdr [28]byte
	for {
		if _, err := io.ReadFull(rw, hdr[:]); err != nil {
			return err
		}
		if m := binary.BigEndian.Uint32(hdr[0:]); m != nbdRequestMagic {
			return fmt.Errorf("request magic %#x", m)
		}
		typ := binary.BigEndian.Uint16(hdr[6:])
		off := binary.BigEndian.Uint64(hdr[16:])
		n := binary.BigEndian.Uint32(hdr[24:])
		var reply [16]byte
		binary.BigEndian.PutUint32(reply[0:], nbdReplyMagic)
		copy(reply[8:], hdr[8:16]) // handle
		inRange := off <= uint64(len(d.data)) && uint64(n) <= uint64(len(d.data))-off
		var payload []byte
		switch {
		case typ == nbdCmdDisc:
			return nil
		case typ == nbdCmdWrite:
			if n > 32<<20 {
				return errors.New("write too large")
			}
			buf := make([]byte, n)
			if _, err := io.ReadFull(rw, buf); err != nil {
				return err
			}
			if inRange {
				d.writeAt(off, buf)
			} else {
				binary.BigEndian.PutUint32(reply[4:], nbdEINVAL)
			}
		case typ == nbdCmdRead && inRange:
			payload = d.readAt(off, int(n))
		case typ == nbdCmdFlush, typ == nbdCmdTrim && inRange:
		default:
			binary.BigEndian.PutUint32(reply[4:], nbdEINVAL)
		}
		if _, err := rw.Write(append(reply[:], payload...)); err != nil {
			return err
		}
	}
}
