package server

import (
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawSock reads and writes a TCP connection's non-blocking socket with
// raw system calls, waiting through the connection's poller (deadlines
// and Close work as on the net.Conn). A read or a writev on a
// non-blocking socket never blocks, so it need not hand its P back to the
// scheduler; the net package's calls do, and when the server was idle
// that wakes the runtime's monitor thread: a futex wake-up per request,
// a large part of a 4 KiB read's cost at queue depth 1.
type rawSock struct {
	rc  syscall.RawConn
	iov []unix.Iovec // writev's vector; used by the reply writer only
}

// newRawSock returns nil when nc is not a TCP connection.
func newRawSock(nc net.Conn) *rawSock {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return &rawSock{rc: rc}
}

// Read implements io.Reader.
func (s *rawSock) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n uintptr
	var errno syscall.Errno
	err := s.rc.Read(func(fd uintptr) bool {
		for {
			n, _, errno = unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			if errno != unix.EINTR {
				return errno != unix.EAGAIN
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, os.NewSyscallError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return int(n), nil
}

// maxIovec is the kernel's IOV_MAX.
const maxIovec = 1024

// writeBuffers writes all of bufs with as few writev calls as the socket
// allows.
func (s *rawSock) writeBuffers(bufs [][]byte) error {
	iov := s.iov[:0]
	for _, b := range bufs {
		if len(b) > 0 {
			v := unix.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			iov = append(iov, v)
		}
	}
	left := iov
	var errno syscall.Errno
	err := s.rc.Write(func(fd uintptr) bool {
		for len(left) > 0 {
			n, _, e := unix.RawSyscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&left[0])), uintptr(min(len(left), maxIovec)))
			switch e {
			case 0:
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
			for n > 0 { // skip what was written
				if l := uintptr(left[0].Len); n >= l {
					n -= l
					left = left[1:]
					continue
				}
				left[0].Base = (*byte)(unsafe.Add(unsafe.Pointer(left[0].Base), n))
				left[0].SetLen(int(left[0].Len) - int(n))
				n = 0
			}
		}
		return true
	})
	runtime.KeepAlive(bufs)
	clear(iov) // do not keep the buffers reachable
	s.iov = iov[:0]
	if err != nil {
		return err
	}
	if errno != 0 {
		return os.NewSyscallError("writev", errno)
	}
	return nil
}
