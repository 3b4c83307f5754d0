package nbdnl

import (
	"fmt"
	"time"

	"github.com/mdlayher/netlink"
)

// The encode functions build the attribute payload of a generic netlink
// request (what follows the 4-byte genetlink header) with netlink's
// AttributeEncoder: attributes in host byte order, nested ones flagged
// NLA_F_NESTED, strings NUL-terminated (as libnl's nla_put_string sends
// them), each padded to 4 bytes. They are pure: file descriptors come in as
// numbers.

// encodeSockets adds SOCKETS: one SOCK_ITEM{SOCK_FD} per fd.
func encodeSockets(ae *netlink.AttributeEncoder, fds []uint32) {
	ae.Nested(AttrSockets, func(list *netlink.AttributeEncoder) error {
		for _, fd := range fds {
			list.Nested(AttrSockItem, func(item *netlink.AttributeEncoder) error {
				item.Uint32(AttrSockFD, fd)
				return nil
			})
		}
		return nil
	})
}

// encodeConnect builds a CONNECT request. cfg must have been validated;
// fds are the descriptors of cfg.Sockets.
func encodeConnect(cfg ConnectConfig, fds []uint32) ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	if cfg.Index != nil {
		ae.Uint32(AttrIndex, *cfg.Index)
	}
	ae.Uint64(AttrSizeBytes, cfg.Size)
	if cfg.BlockSize != 0 {
		ae.Uint64(AttrBlockSizeBytes, cfg.BlockSize)
	}
	if err := encodeSeconds(ae, AttrTimeout, "timeout", cfg.Timeout); err != nil {
		return nil, err
	}
	ae.Uint64(AttrServerFlags, cfg.ServerFlags)
	ae.Uint64(AttrClientFlags, cfg.ClientFlags)
	// Always sent: the kernel default is 0, which fails I/O on the first
	// dead socket; sending it makes the choice explicit in the request.
	dct, err := seconds("dead connection timeout", cfg.DeadConnTimeout)
	if err != nil {
		return nil, err
	}
	ae.Uint64(AttrDeadConnTimeout, dct)
	return encodeTail(ae, fds, cfg.BackendID)
}

// encodeSeconds adds the u64 attribute attr holding d in whole seconds
// (seconds; name is the error's), unless d is 0 (the kernel's value stays).
func encodeSeconds(ae *netlink.AttributeEncoder, attr uint16, name string, d time.Duration) error {
	if d == 0 {
		return nil
	}
	s, err := seconds(name, d)
	if err != nil {
		return err
	}
	ae.Uint64(attr, s)
	return nil
}

// encodeTail adds SOCKETS and, when set, BACKEND_IDENTIFIER, and encodes.
func encodeTail(ae *netlink.AttributeEncoder, fds []uint32, backend string) ([]byte, error) {
	encodeSockets(ae, fds)
	if backend != "" {
		ae.String(AttrBackendIdentifier, backend)
	}
	b, err := ae.Encode()
	if err != nil {
		return nil, fmt.Errorf("%d sockets, backend identifier of %d bytes: %w", len(fds), len(backend), err)
	}
	return b, nil
}

// encodeReconfigure builds a RECONFIGURE request for device index.
func encodeReconfigure(index uint32, cfg ReconfigureConfig, fds []uint32) ([]byte, error) {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(AttrIndex, index)
	if err := encodeSeconds(ae, AttrTimeout, "timeout", cfg.Timeout); err != nil {
		return nil, err
	}
	if err := encodeSeconds(ae, AttrDeadConnTimeout, "dead connection timeout", cfg.DeadConnTimeout); err != nil {
		return nil, err
	}
	return encodeTail(ae, fds, cfg.BackendID)
}

// encodeIndex encodes one INDEX attribute: a DISCONNECT request, or a
// STATUS request for one device. A lone u32 always fits.
func encodeIndex(index uint32) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(AttrIndex, index)
	b, _ := ae.Encode()
	return b
}

// encodeDisconnect builds a DISCONNECT request.
func encodeDisconnect(index uint32) []byte { return encodeIndex(index) }

// encodeStatus builds a STATUS request: one device, or all when index is nil.
func encodeStatus(index *uint32) []byte {
	if index == nil {
		return nil
	}
	return encodeIndex(*index)
}
