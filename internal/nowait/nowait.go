// Package nowait reads a file's pages from the page cache without waiting
// for the disk (preadv2 with RWF_NOWAIT), so that a server's request loop
// can serve cached data itself and hand only misses to a goroutine that
// may wait. It is shared by the server's file backend and the
// copy-on-write overlay's data file.
package nowait

import (
	"errors"
	"math/bits"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrWouldBlock reports that the data is not (all) in the page cache, or
// that the file cannot be read without waiting: read it the usual way.
var ErrWouldBlock = errors.New("data not in the page cache")

// File reads one file descriptor without waiting. The zero value is not
// usable; New makes one.
type File struct {
	fd int
	// unsupported is set once RWF_NOWAIT turned out unsupported here
	// (old kernel, or a file system without it): every read then fails
	// at once.
	unsupported atomic.Bool
}

// New reads fd, which the caller keeps open while the File is used.
func New(fd int) *File { return &File{fd: fd} }

// ReadAt reads what of p at off is in the page cache without waiting. It
// returns ErrWouldBlock when nothing could be read so; a count short of
// len(p) means only a prefix was cached.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if f.unsupported.Load() {
		return 0, ErrWouldBlock
	}
	iov := unix.Iovec{Base: &p[0]}
	iov.SetLen(len(p))
	// Raw: the call does not block (that is what RWF_NOWAIT is for), so
	// it need not hand its P back to the scheduler.
	lo, hi := uintptr(off), uintptr(uint64(off)>>(bits.UintSize-1)>>1) // pos_l, pos_h
	n, _, e := unix.RawSyscall6(unix.SYS_PREADV2, uintptr(f.fd), uintptr(unsafe.Pointer(&iov)), 1, lo, hi, unix.RWF_NOWAIT)
	switch e {
	case 0:
		return int(n), nil
	case unix.EOPNOTSUPP, unix.ENOSYS, unix.EINVAL:
		f.unsupported.Store(true) // no RWF_NOWAIT here: always wait
	}
	return 0, ErrWouldBlock // EAGAIN, or an error the waiting path reports
}
