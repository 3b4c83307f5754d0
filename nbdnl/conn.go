package nbdnl

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ErrNoFamily is returned (wrapped) by Dial when the kernel has no "nbd"
// generic netlink family: the nbd module is not loaded, or predates 4.12.
// Callers fall back to the ioctl interface (Sys.AttachIoctl) then.
var ErrNoFamily = errors.New("kernel has no nbd generic netlink family")

// Conn is a generic netlink socket bound to the nbd family. Its methods
// may be called from several goroutines; requests are serialised.
type Conn struct {
	mu       sync.Mutex
	c        *genetlink.Conn
	family   genetlink.Family
	pageSize int
}

// Dial opens a generic netlink socket and resolves the nbd family.
func Dial() (*Conn, error) {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return nil, fmt.Errorf("open generic netlink socket: %w", err)
	}
	return newConn(c)
}

// newConn resolves the family on an open socket (a fake one in tests) and
// takes ownership of c.
func newConn(c *genetlink.Conn) (*Conn, error) {
	f, err := c.GetFamily(FamilyName)
	if err != nil {
		c.Close()
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w (look up %q: %v)", ErrNoFamily, FamilyName, err)
		}
		return nil, fmt.Errorf("look up generic netlink family %q: %w", FamilyName, err)
	}
	return &Conn{c: c, family: f, pageSize: os.Getpagesize()}, nil
}

// Close closes the socket.
func (c *Conn) Close() error { return c.c.Close() }

// maxReplies bounds how many messages one request may be answered with
// before its acknowledgement.
const maxReplies = 64

// request sends cmd with attributes body, asking for an acknowledgement,
// and collects the family's replies until the acknowledgement arrives. The
// nbd family answers CONNECT and STATUS with a reply followed by a separate
// ack datagram, and DISCONNECT and RECONFIGURE with the ack alone; reading
// through the ack keeps the socket clean for the next request. Messages
// with another sequence number (left over from an interrupted request) are
// skipped. An error from the kernel comes back as a *netlink.OpError
// wrapping the errno.
func (c *Conn) request(cmd uint8, body []byte) ([]genetlink.Message, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	req, err := c.c.Send(genetlink.Message{
		Header: genetlink.Header{Command: cmd, Version: FamilyVersion},
		Data:   body,
	}, c.family.ID, netlink.Request|netlink.Acknowledge)
	if err != nil {
		return nil, err
	}
	var replies []genetlink.Message
	for range maxReplies {
		gms, nms, err := c.c.Receive()
		if err != nil {
			return nil, err
		}
		for i, nm := range nms {
			switch {
			case nm.Header.Sequence != req.Header.Sequence:
				continue
			case nm.Header.Type == netlink.Error:
				return replies, nil // the ack: errno 0 (errors surface from Receive)
			case nm.Header.Type == netlink.HeaderType(c.family.ID):
				replies = append(replies, gms[i])
			}
		}
	}
	return nil, fmt.Errorf("no acknowledgement after %d messages", maxReplies)
}

// DevicePath returns "/dev/nbdN".
func DevicePath(index uint32) string { return fmt.Sprintf("/dev/nbd%d", index) }

func describe(index *uint32) string {
	if index == nil {
		return "a free nbd device"
	}
	return DevicePath(*index)
}

// explain adds what an errno from the nbd family usually means.
func explain(err error) error {
	var hint string
	switch {
	case errors.Is(err, unix.EPERM):
		hint = "needs CAP_SYS_ADMIN"
	case errors.Is(err, unix.EBUSY):
		hint = "device already connected"
	case errors.Is(err, unix.EINVAL):
		hint = "kernel refused the request; its reason is in the kernel log"
	default:
		return err
	}
	return fmt.Errorf("%w (%s)", err, hint)
}

// Connect hands cfg.Sockets to the kernel and returns the device index.
// The sockets must be past the NBD handshake (transmission phase).
func (c *Conn) Connect(cfg ConnectConfig) (uint32, error) {
	dev := describe(cfg.Index)
	if err := cfg.validate(c.pageSize); err != nil {
		return 0, fmt.Errorf("nbd connect %s: %w", dev, err)
	}
	body, err := encodeConnect(cfg, fds(cfg.Sockets))
	if err != nil {
		return 0, fmt.Errorf("nbd connect %s: %w", dev, err)
	}
	replies, err := c.request(CmdConnect, body)
	runtime.KeepAlive(cfg.Sockets) // the fds must stay open until the kernel took them
	if err != nil {
		return 0, fmt.Errorf("nbd connect %s: %w", dev, explain(err))
	}
	for _, m := range replies {
		if m.Header.Command != CmdConnect {
			continue
		}
		idx, err := decodeIndex(m.Data)
		if err != nil {
			return 0, fmt.Errorf("nbd connect %s: decode reply: %w", dev, err)
		}
		return idx, nil
	}
	if cfg.Index != nil {
		return *cfg.Index, nil // acknowledged; the reply is lost only when the kernel is out of memory
	}
	return 0, fmt.Errorf("nbd connect %s: kernel acknowledged without telling the index", dev)
}

// Reconfigure gives device index new sockets, which replace dead ones
// (sockets beyond the number of dead ones are dropped by the kernel).
func (c *Conn) Reconfigure(index uint32, cfg ReconfigureConfig) error {
	dev := DevicePath(index)
	if err := checkSockets(cfg.Sockets, 0, false); err != nil {
		return fmt.Errorf("nbd reconfigure %s: %w", dev, err)
	}
	body, err := encodeReconfigure(index, cfg, fds(cfg.Sockets))
	if err != nil {
		return fmt.Errorf("nbd reconfigure %s: %w", dev, err)
	}
	_, err = c.request(CmdReconfigure, body)
	runtime.KeepAlive(cfg.Sockets)
	if err != nil {
		return fmt.Errorf("nbd reconfigure %s: %w", dev, explain(err))
	}
	return nil
}

// Disconnect sends NBD_CMD_DISC to the server and tears device index down.
func (c *Conn) Disconnect(index uint32) error {
	if _, err := c.request(CmdDisconnect, encodeDisconnect(index)); err != nil {
		return fmt.Errorf("nbd disconnect %s: %w", DevicePath(index), explain(err))
	}
	return nil
}

// Status reports device index, or every nbd device when index is nil,
// sorted by index. An index that does not exist yields an empty list.
func (c *Conn) Status(index *uint32) ([]DeviceStatus, error) {
	what := "all nbd devices"
	if index != nil {
		what = DevicePath(*index)
	}
	replies, err := c.request(CmdStatus, encodeStatus(index))
	if err != nil {
		return nil, fmt.Errorf("nbd status of %s: %w", what, explain(err))
	}
	var out []DeviceStatus
	for _, m := range replies {
		if m.Header.Command != CmdStatus {
			continue
		}
		ds, err := decodeStatus(m.Data)
		if err != nil {
			return nil, fmt.Errorf("nbd status of %s: decode reply: %w", what, err)
		}
		out = append(out, ds...)
	}
	slices.SortFunc(out, func(a, b DeviceStatus) int { return cmp.Compare(a.Index, b.Index) })
	return out, nil
}
