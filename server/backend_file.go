package server

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/nbdboot/nbdboot/internal/nowait"
	"github.com/nbdboot/nbdboot/protocol"
	"golang.org/x/sys/unix"
)

// FileBackend serves a regular file or a block device through one file
// descriptor shared by every connection, so that FLUSH (fdatasync) on any
// connection covers writes made on all of them (NBD_FLAG_CAN_MULTI_CONN).
type FileBackend struct {
	f        *os.File
	fd       int
	size     int64
	blockDev bool
	// sparse is set when the file has (or may have gained) holes.
	sparse atomic.Bool
	// noSeekData is set once SEEK_DATA turned out unsupported.
	noSeekData atomic.Bool
	nowait     *nowait.File
	alloc      *allocMap // regular files: which blocks may hold data
}

// OpenFile opens a regular file or block device as a Backend.
func OpenFile(path string, readOnly bool) (*FileBackend, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err // *PathError: names the operation and the path
	}
	b, err := newFileBackend(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return b, nil
}

func newFileBackend(f *os.File) (*FileBackend, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	b := &FileBackend{f: f, fd: int(f.Fd()), nowait: nowait.New(int(f.Fd()))}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		b.size = st.Size
		b.alloc = newAllocMap(b.fd, st.Size)
		b.sparse.Store(st.Blocks*512 < st.Size)
	case unix.S_IFBLK:
		b.blockDev = true
		b.noSeekData.Store(true)
		n, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			return nil, fmt.Errorf("size of block device %s: %w", f.Name(), err)
		}
		b.size = n
	default:
		return nil, fmt.Errorf("%s: not a regular file or block device", f.Name())
	}
	return b, nil
}

// Size implements Backend.
func (b *FileBackend) Size() int64 { return b.size }

// ReadAt implements Backend.
func (b *FileBackend) ReadAt(p []byte, off int64) (int, error) { return b.f.ReadAt(p, off) }

// ReadAtNoWait implements NoWaitReader: it reads what of p at off is in
// the page cache without waiting for the disk (preadv2 with RWF_NOWAIT);
// it returns errWouldBlock when nothing could be read without waiting. A
// short count means only a prefix was cached.
func (b *FileBackend) ReadAtNoWait(p []byte, off int64) (int, error) {
	return b.nowait.ReadAt(p, off)
}

// WriteAt implements Backend.
func (b *FileBackend) WriteAt(p []byte, off int64) (int, error) {
	b.alloc.beginWrite(off, int64(len(p))) // the allocation map (allocmap.go)
	defer b.alloc.endWrite()
	return b.f.WriteAt(p, off)
}

// Sync implements Backend with fdatasync.
func (b *FileBackend) Sync() error {
	return ignoreEINTR(func() error { return unix.Fdatasync(b.fd) })
}

// WriteAtFUA writes p at off and makes it durable before returning
// (pwritev2 with RWF_DSYNC, which syncs only this range), falling back to
// WriteAt and fdatasync.
func (b *FileBackend) WriteAtFUA(p []byte, off int64) error {
	b.alloc.beginWrite(off, int64(len(p)))
	defer b.alloc.endWrite()
	for len(p) > 0 {
		n, err := unix.Pwritev2(b.fd, [][]byte{p}, off, unix.RWF_DSYNC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if isNotSupported(err) {
			if _, err := b.f.WriteAt(p, off); err != nil {
				return err
			}
			return b.Sync()
		}
		if err != nil {
			return err
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// Trim implements Backend: BLKDISCARD on a block device, a punched hole in
// a file. Unsupported or misaligned is not an error: TRIM is a hint.
func (b *FileBackend) Trim(off, length int64) error {
	if length == 0 {
		return nil
	}
	if b.blockDev {
		r := [2]uint64{uint64(off), uint64(length)}
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(b.fd), unix.BLKDISCARD, uintptr(unsafe.Pointer(&r)))
		if e != 0 && e != unix.EINVAL && !isNotSupported(e) {
			return fmt.Errorf("BLKDISCARD: %w", e)
		}
		return nil
	}
	err := b.fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length)
	if isNotSupported(err) {
		return nil
	}
	return err
}

// Zero implements Backend: punch a hole (unless noHole), else
// FALLOC_FL_ZERO_RANGE, else (unless fast) write zeroes.
func (b *FileBackend) Zero(off, length int64, noHole, fast bool) error {
	if length == 0 {
		return nil
	}
	if !noHole {
		err := b.fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length)
		if !isNotSupported(err) {
			return err
		}
	}
	mode := uint32(unix.FALLOC_FL_ZERO_RANGE)
	if !b.blockDev {
		mode |= unix.FALLOC_FL_KEEP_SIZE
	}
	err := b.fallocate(mode, off, length)
	if !isNotSupported(err) {
		return err
	}
	if fast {
		return ErrNotFast
	}
	return b.writeZeroes(off, length)
}

func (b *FileBackend) fallocate(mode uint32, off, length int64) error {
	punch := mode&unix.FALLOC_FL_PUNCH_HOLE != 0
	t := b.alloc.beforePunch()
	err := ignoreEINTR(func() error { return unix.Fallocate(b.fd, mode, off, length) })
	if err == nil && punch {
		b.sparse.Store(true)
		b.alloc.afterPunch(off, length, t)
	}
	return err
}

// zeroBlock is shared, read-only, by every writeZeroes.
var zeroBlock = make([]byte, 1<<20)

func (b *FileBackend) writeZeroes(off, length int64) error {
	for length > 0 {
		n := min(length, int64(len(zeroBlock)))
		if _, err := b.f.WriteAt(zeroBlock[:n], off); err != nil {
			return err
		}
		off += n
		length -= n
	}
	return nil
}

// MaybeSparse implements Backend.
func (b *FileBackend) MaybeSparse() bool { return b.sparse.Load() && !b.noSeekData.Load() }

// Extents implements Backend from the allocation map (allocmap.go),
// which learns unknown regions with SEEK_DATA and SEEK_HOLE. Where those
// are unsupported (or on a block device) the whole range is data.
func (b *FileBackend) Extents(off, length int64, max int) ([]protocol.Extent, error) {
	if length <= 0 || max <= 0 {
		return nil, nil
	}
	if b.alloc == nil || b.noSeekData.Load() {
		return protocol.AddExtent(nil, length, 0), nil
	}
	exts, err := b.alloc.extents(off, length, max)
	if errors.Is(err, errNoSeekData) {
		b.noSeekData.Store(true)
		return protocol.AddExtent(nil, length, 0), nil
	}
	return exts, err
}

// ExtentsNoWait implements NoWaitExtents from the allocation map.
func (b *FileBackend) ExtentsNoWait(dst []protocol.Extent, off, length int64, max int) ([]protocol.Extent, bool) {
	if b.alloc == nil || b.noSeekData.Load() {
		return protocol.AddExtent(dst, length, 0), true
	}
	return b.alloc.extentsNoWait(dst, off, length, max)
}

// Cache implements Backend with posix_fadvise(WILLNEED).
func (b *FileBackend) Cache(off, length int64) error {
	if length == 0 {
		return nil
	}
	return unix.Fadvise(b.fd, off, length, unix.FADV_WILLNEED)
}

// Close implements Backend.
func (b *FileBackend) Close() error { return b.f.Close() }

func isNotSupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.ENOTTY)
}

func ignoreEINTR(f func() error) error {
	for {
		err := f()
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
