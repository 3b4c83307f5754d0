package nbdnl

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"time"

	"github.com/nbdboot/nbdboot/protocol"
)

// ConnectConfig describes a device for CONNECT (and for the ioctl fallback).
type ConnectConfig struct {
	// Index selects /dev/nbdN; nil lets the kernel pick a free device.
	Index *uint32
	// Size is the export size in bytes (required, > 0).
	Size uint64
	// BlockSize is the device's logical block size: 0 (kernel default,
	// 1024) or a power of two from 512 to the page size. See BlockSize.
	BlockSize uint64
	// ServerFlags are the export's transmission flags from the handshake.
	ServerFlags uint64
	// ClientFlags are ClientFlag* bits.
	ClientFlags uint64
	// Timeout is the per-request timeout, sent in whole seconds (rounded
	// up); 0 keeps the kernel default (30s, then the socket is declared
	// dead).
	Timeout time.Duration
	// DeadConnTimeout is how long I/O waits for a RECONFIGURE when every
	// socket is dead; 0 fails I/O at once.
	DeadConnTimeout time.Duration
	// Sockets are connected sockets in the transmission phase. The kernel
	// takes its own reference; the caller may close them after Connect.
	Sockets []*os.File
	// BackendID, when set, is exported in /sys/block/nbdN/backend and must
	// be repeated by every RECONFIGURE.
	BackendID string
}

// ReconfigureConfig describes a RECONFIGURE: new sockets replace dead ones.
type ReconfigureConfig struct {
	Sockets []*os.File
	// Timeout and DeadConnTimeout are sent only when non-zero.
	Timeout         time.Duration
	DeadConnTimeout time.Duration
	// BackendID must match the one given to Connect, if any.
	BackendID string
}

// maxSockets bounds the sockets of one request (the kernel has no limit
// but one request must fit a 64 KiB attribute; 1024 is plenty).
const maxSockets = 1024

// seconds converts a timeout to the kernel's whole seconds, rounding up
// so that 500ms does not become "no timeout".
func seconds(name string, d time.Duration) (uint64, error) {
	if d < 0 {
		return 0, fmt.Errorf("%s %v: must not be negative", name, d)
	}
	return uint64((d + time.Second - 1) / time.Second), nil
}

// ValidBlockSize reports whether the kernel accepts bs as a block size
// (blk_validate_block_size: a power of two from 512 to the page size).
// 0 means the kernel default and is accepted too.
func ValidBlockSize(bs uint64, pageSize int) error {
	if bs == 0 {
		return nil
	}
	if bs < 512 || bs > uint64(pageSize) || bits.OnesCount64(bs) != 1 {
		return fmt.Errorf("block size %d: must be a power of two from 512 to %d (the page size)", bs, pageSize)
	}
	return nil
}

// BlockSize is the one rule for the device's logical block size, used by
// the boot, the supervisor and nbdboot attach alike: the smallest power of
// two that is at least 512, the export's minimum block size minBlock (0:
// not advertised) and the size asked for (want: bs= on the command line,
// 0 for none); refused, with an error saying why, when that exceeds the
// page size, the kernel's limit. Never silently less: the kernel never
// issues I/O smaller than, or misaligned to, the logical block size, and
// a server's minimum must be honoured. It is deliberately NOT the
// preferred block size: a 4096-byte logical block makes filesystems with
// 1 KiB blocks (mke2fs's choice for small images) and 512-byte partition
// tables unusable, while the page cache already sends page-sized I/O.
func BlockSize(minBlock, want uint32, pageSize int) (uint64, error) {
	need := max(minBlock, want)
	bs := uint64(512)
	for bs < uint64(need) {
		bs <<= 1
	}
	if bs > uint64(pageSize) {
		who := "export minimum block size"
		if want > minBlock {
			who = "block size asked for (bs=)"
		}
		return 0, fmt.Errorf("%s %d exceeds the page size %d the kernel allows", who, need, pageSize)
	}
	return bs, nil
}

// Geometry returns the block size (BlockSize) and the device size for an
// export of size bytes: the size rounded down to whole blocks, since the
// kernel cannot address a partial last block. An export smaller than one
// block is an error.
func Geometry(size uint64, minBlock, want uint32, pageSize int) (blockSize, deviceSize uint64, err error) {
	bs, err := BlockSize(minBlock, want, pageSize)
	if err != nil {
		return 0, 0, err
	}
	dev := size &^ (bs - 1)
	if dev == 0 {
		return 0, 0, fmt.Errorf("export of %d bytes is less than one %d-byte block", size, bs)
	}
	return bs, dev, nil
}

// ExportConfig is the CONNECT configuration of a negotiated export: its
// geometry (Geometry, with block size want) and its transmission flags.
// The caller adds the index, the timeouts, the sockets and the backend
// identifier.
func ExportConfig(info protocol.ExportInfo, want uint32, pageSize int) (ConnectConfig, error) {
	bs, size, err := Geometry(info.Size, info.MinBlock, want, pageSize)
	if err != nil {
		return ConnectConfig{}, fmt.Errorf("export %q: %w", info.Name, err)
	}
	return ConnectConfig{Size: size, BlockSize: bs, ServerFlags: uint64(info.Flags)}, nil
}

var errNoSockets = errors.New("no sockets given")

func checkSockets(socks []*os.File, serverFlags uint64, multiConnCheck bool) error {
	if len(socks) == 0 {
		return errNoSockets
	}
	if len(socks) > maxSockets {
		return fmt.Errorf("%d sockets: at most %d", len(socks), maxSockets)
	}
	for i, s := range socks {
		if s == nil {
			return fmt.Errorf("socket %d is nil", i)
		}
	}
	if multiConnCheck && len(socks) > 1 && serverFlags&ServerFlagCanMultiConn == 0 {
		return fmt.Errorf("%d sockets but the export lacks NBD_FLAG_CAN_MULTI_CONN: the kernel refuses more than one", len(socks))
	}
	return nil
}

func (c ConnectConfig) validate(pageSize int) error {
	if c.Size == 0 {
		return errors.New("size 0: the export is empty")
	}
	if c.Size > 1<<63-1 {
		return fmt.Errorf("size %d: larger than the kernel's loff_t", c.Size)
	}
	if err := ValidBlockSize(c.BlockSize, pageSize); err != nil {
		return err
	}
	if _, err := seconds("timeout", c.Timeout); err != nil {
		return err
	}
	if _, err := seconds("dead connection timeout", c.DeadConnTimeout); err != nil {
		return err
	}
	return checkSockets(c.Sockets, c.ServerFlags, true)
}

func fds(socks []*os.File) []uint32 {
	out := make([]uint32, len(socks))
	for i, s := range socks {
		out[i] = uint32(s.Fd())
	}
	return out
}
