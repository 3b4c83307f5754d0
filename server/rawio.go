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
	rc syscall.RawConn

	// The read loop's state, and its call bound once (a closure per
	// call would be allocated).
	rbuf   []byte
	rn     uintptr
	rerrno syscall.Errno
	readFn func(fd uintptr) bool

	// The reply writer's state.
	iov     []unix.Iovec // writev's vector
	left    []unix.Iovec // what is left to write of it
	werrno  syscall.Errno
	writeFn func(fd uintptr) bool
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
	s := &rawSock{rc: rc}
	s.readFn, s.writeFn = s.read, s.writev
	return s
}

// Read implements io.Reader.
func (s *rawSock) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	s.rbuf = p
	err := s.rc.Read(s.readFn)
	s.rbuf = nil
	switch {
	case err != nil:
		return 0, err
	case s.rerrno != 0:
		return 0, os.NewSyscallError("read", s.rerrno)
	case s.rn == 0:
		return 0, io.EOF
	}
	return int(s.rn), nil
}

// read is one attempt; false asks the poller to wait for input.
func (s *rawSock) read(fd uintptr) bool {
	for {
		s.rn, _, s.rerrno = unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&s.rbuf[0])), uintptr(len(s.rbuf)))
		if s.rerrno != unix.EINTR {
			return s.rerrno != unix.EAGAIN
		}
	}
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
	s.left, s.werrno = iov, 0
	err := s.rc.Write(s.writeFn)
	runtime.KeepAlive(bufs)
	clear(iov) // do not keep the buffers reachable
	s.iov, s.left = iov[:0], nil
	if err != nil {
		return err
	}
	if s.werrno != 0 {
		return os.NewSyscallError("writev", s.werrno)
	}
	return nil
}

// writev writes what is left; false asks the poller to wait for room.
func (s *rawSock) writev(fd uintptr) bool {
	for len(s.left) > 0 {
		n, _, e := unix.RawSyscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&s.left[0])), uintptr(min(len(s.left), maxIovec)))
		switch e {
		case 0:
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			s.werrno = e
			return true
		}
		for n > 0 { // skip what was written
			if l := uintptr(s.left[0].Len); n >= l {
				n -= l
				s.left = s.left[1:]
				continue
			}
			s.left[0].Base = (*byte)(unsafe.Add(unsafe.Pointer(s.left[0].Base), n))
			s.left[0].SetLen(int(s.left[0].Len) - int(n))
			n = 0
		}
	}
	return true
}
