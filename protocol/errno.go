package protocol

import "fmt"

// Errno is an error value carried in a simple reply or an error chunk. It
// implements error, so errors.Is(err, Errno(EINVAL)) works on what Client
// returns.
type Errno uint32

func (e Errno) Error() string {
	switch uint32(e) {
	case EPERM:
		return "EPERM"
	case EIO:
		return "EIO"
	case ENOMEM:
		return "ENOMEM"
	case EINVAL:
		return "EINVAL"
	case ENOSPC:
		return "ENOSPC"
	case EOVERFLOW:
		return "EOVERFLOW"
	case ENOTSUP:
		return "ENOTSUP"
	case ESHUTDOWN:
		return "ESHUTDOWN"
	}
	return fmt.Sprintf("errno %d", uint32(e))
}
