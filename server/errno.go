package server

import (
	"errors"
	"syscall"

	"github.com/nbdboot/nbdboot/cow"
	"github.com/nbdboot/nbdboot/protocol"
)

// errnoOf maps a backend error to the NBD error value the spec allows.
func errnoOf(err error) uint32 {
	if errors.Is(err, ErrNotFast) {
		return protocol.ENOTSUP
	}
	if errors.Is(err, cow.ErrQuota) {
		return protocol.ENOSPC
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		switch en {
		case syscall.EPERM, syscall.EACCES, syscall.EROFS:
			return protocol.EPERM
		case syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG:
			return protocol.ENOSPC
		case syscall.ENOMEM:
			return protocol.ENOMEM
		case syscall.EINVAL:
			return protocol.EINVAL
		case syscall.EOVERFLOW:
			return protocol.EOVERFLOW
		case syscall.EOPNOTSUPP:
			return protocol.ENOTSUP
		}
	}
	return protocol.EIO
}
