package nbdnl

import "fmt"

// The encode functions build the attribute payload of a generic netlink
// request (what follows the 4-byte genetlink header). They are pure: file
// descriptors come in as numbers.

// encodeSockets builds the SOCKETS payload: one SOCK_ITEM{SOCK_FD} per fd.
func encodeSockets(fds []uint32) ([]byte, error) {
	var list []byte
	for _, fd := range fds {
		item := appendU32(nil, AttrSockFD, fd)
		var err error
		if list, err = appendNested(list, AttrSockItem, item); err != nil {
			return nil, err
		}
	}
	return list, nil
}

// encodeConnect builds a CONNECT request. cfg must have been validated;
// fds are the descriptors of cfg.Sockets.
func encodeConnect(cfg ConnectConfig, fds []uint32) ([]byte, error) {
	var b []byte
	if cfg.Index != nil {
		b = appendU32(b, AttrIndex, *cfg.Index)
	}
	b = appendU64(b, AttrSizeBytes, cfg.Size)
	if cfg.BlockSize != 0 {
		b = appendU64(b, AttrBlockSizeBytes, cfg.BlockSize)
	}
	if cfg.Timeout != 0 {
		s, err := seconds("timeout", cfg.Timeout)
		if err != nil {
			return nil, err
		}
		b = appendU64(b, AttrTimeout, s)
	}
	b = appendU64(b, AttrServerFlags, cfg.ServerFlags)
	b = appendU64(b, AttrClientFlags, cfg.ClientFlags)
	// Always sent: the kernel default is 0, which fails I/O on the first
	// dead socket; sending it makes the choice explicit in the request.
	dct, err := seconds("dead connection timeout", cfg.DeadConnTimeout)
	if err != nil {
		return nil, err
	}
	b = appendU64(b, AttrDeadConnTimeout, dct)
	return appendTail(b, fds, cfg.BackendID)
}

// appendTail appends SOCKETS and, when set, BACKEND_IDENTIFIER.
func appendTail(b []byte, fds []uint32, backend string) ([]byte, error) {
	socks, err := encodeSockets(fds)
	if err != nil {
		return nil, err
	}
	if b, err = appendNested(b, AttrSockets, socks); err != nil {
		return nil, fmt.Errorf("%d sockets: %w", len(fds), err)
	}
	if backend != "" {
		if b, err = appendString(b, AttrBackendIdentifier, backend); err != nil {
			return nil, fmt.Errorf("backend identifier: %w", err)
		}
	}
	return b, nil
}

// encodeReconfigure builds a RECONFIGURE request for device index.
func encodeReconfigure(index uint32, cfg ReconfigureConfig, fds []uint32) ([]byte, error) {
	b := appendU32(nil, AttrIndex, index)
	if cfg.Timeout != 0 {
		s, err := seconds("timeout", cfg.Timeout)
		if err != nil {
			return nil, err
		}
		b = appendU64(b, AttrTimeout, s)
	}
	if cfg.DeadConnTimeout != 0 {
		s, err := seconds("dead connection timeout", cfg.DeadConnTimeout)
		if err != nil {
			return nil, err
		}
		b = appendU64(b, AttrDeadConnTimeout, s)
	}
	return appendTail(b, fds, cfg.BackendID)
}

// encodeDisconnect builds a DISCONNECT request.
func encodeDisconnect(index uint32) []byte { return appendU32(nil, AttrIndex, index) }

// encodeStatus builds a STATUS request: one device, or all when index is nil.
func encodeStatus(index *uint32) []byte {
	if index == nil {
		return nil
	}
	return appendU32(nil, AttrIndex, *index)
}
