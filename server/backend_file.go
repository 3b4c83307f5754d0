package server

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/nbdboot/nbdboot/internal/disk"
	"github.com/nbdboot/nbdboot/internal/nowait"
	"github.com/nbdboot/nbdboot/protocol"
	"golang.org/x/sys/unix"
)

// FileBackend serves a regular file or a block device through one file
// descriptor shared by every connection, so that FLUSH (fdatasync) on any
// connection covers writes made on all of them (NBD_FLAG_CAN_MULTI_CONN).
type FileBackend struct {
	f        *os.File  // reads; w.OS()
	w        disk.File // writes and syncs
	fd       int
	size     int64
	blockDev bool
	// sparse is set when the file has (or may have gained) holes.
	sparse atomic.Bool
	// noSeekData is set once SEEK_DATA turned out unsupported.
	noSeekData atomic.Bool
	nowait     *nowait.File
	mapped     []byte         // regular files: the file mapped read-only (mapped.go), or nil
	alloc      *allocMap      // regular files: which blocks may hold data
	dev, ino   uint64         // the file's identity, to share alloc
	closed     atomic.Bool    // stops the learner
	learner    sync.WaitGroup // the background learning of alloc
	// check watches a read-only regular file for changes by others
	// (filecheck.go); nil otherwise.
	check *fileCheck
	// failed is sticky: a failed fdatasync or RWF_DSYNC write. The
	// kernel reports a writeback error to an fd once, and may have
	// dropped the dirty pages: a later fdatasync succeeding would say
	// nothing about them, so every later Sync and FUA write fails.
	failed atomic.Pointer[error]
}

// OpenFile opens a regular file or block device as a Backend.
func OpenFile(path string, readOnly bool) (*FileBackend, error) {
	return openFileFS(disk.OS{}, path, readOnly)
}

// openFileFS is OpenFile writing through fs (tests inject a power-loss
// model).
func openFileFS(fs disk.FS, path string, readOnly bool) (*FileBackend, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := fs.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err // *PathError: names the operation and the path
	}
	b, err := newFileBackend(f, readOnly)
	if err != nil {
		f.Close()
		return nil, err
	}
	return b, nil
}

func newFileBackend(w disk.File, readOnly bool) (*FileBackend, error) {
	f := w.OS()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	b := &FileBackend{f: f, w: w, fd: int(f.Fd()), nowait: nowait.New(int(f.Fd()))}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		b.size = st.Size
		b.mapped = nowait.Map(b.fd, st.Size)
		b.alloc = newAllocMap(st.Size)
		b.dev, b.ino = st.Dev, st.Ino
		b.sparse.Store(st.Blocks*512 < st.Size)
		if readOnly {
			b.check = newFileCheck(b.fd, f.Name(), &st, func() bool { return b.alloc.changed.Load() })
		}
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

// ReadAt implements Backend; it fails on a range the file no longer
// holds as served (filecheck.go).
func (b *FileBackend) ReadAt(p []byte, off int64) (int, error) {
	if err := b.check.check(off, int64(len(p)), true); err != nil {
		return 0, err
	}
	return b.f.ReadAt(p, off)
}

// ReadAtNoWait implements NoWaitReader: it reads what of p at off is in
// the page cache without waiting for the disk (preadv2 with RWF_NOWAIT);
// it returns errWouldBlock when nothing could be read without waiting. A
// short count means only a prefix was cached.
func (b *FileBackend) ReadAtNoWait(p []byte, off int64) (int, error) {
	if b.check.check(off, int64(len(p)), true) != nil {
		return 0, errWouldBlock // ReadAt gives the error
	}
	return b.nowait.ReadAt(p, off)
}

// Mapped implements MappedReader.
func (b *FileBackend) Mapped(off, n int64) []byte {
	if b.mapped == nil || off < 0 || n < 0 || off > b.size || n > b.size-off {
		return nil
	}
	if b.check.check(off, n, true) != nil {
		return nil // ReadAt gives the error
	}
	return b.mapped[off : off+n : off+n]
}

// WriteAt implements Backend.
func (b *FileBackend) WriteAt(p []byte, off int64) (int, error) {
	b.alloc.beginWrite(off, int64(len(p))) // the allocation map (allocmap.go)
	defer b.alloc.endWrite()
	return b.w.WriteAt(p, off)
}

// Sync implements Backend with fdatasync. A failure is sticky (failed).
func (b *FileBackend) Sync() error {
	if p := b.failed.Load(); p != nil {
		return fmt.Errorf("sync %s: failed earlier: %w", b.f.Name(), *p)
	}
	if err := b.w.Datasync(); err != nil {
		b.failed.CompareAndSwap(nil, &err)
		return err
	}
	return nil
}

// WriteAtFUA writes p at off and makes it durable before returning
// (pwritev2 with RWF_DSYNC, which syncs only this range), falling back to
// WriteAt and Sync where RWF_DSYNC is unsupported. A failed RWF_DSYNC
// write is sticky like a failed Sync (its sync may have consumed the
// writeback error a later fdatasync would report), unless the write
// itself found no space: ENOSPC and EDQUOT come from the write's block
// reservation, before anything is synced.
func (b *FileBackend) WriteAtFUA(p []byte, off int64) error {
	if e := b.failed.Load(); e != nil {
		return fmt.Errorf("write %d bytes at offset %d with FUA to %s: failed earlier: %w", len(p), off, b.f.Name(), *e)
	}
	b.alloc.beginWrite(off, int64(len(p)))
	defer b.alloc.endWrite()
	_, err := b.w.WriteAtDSync(p, off)
	switch {
	case err == nil:
		return nil
	case disk.NotSupported(err):
		if _, err := b.w.WriteAt(p, off); err != nil {
			return err
		}
		return b.Sync()
	case !errors.Is(err, unix.ENOSPC) && !errors.Is(err, unix.EDQUOT):
		b.failed.CompareAndSwap(nil, &err)
	}
	return err
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
	err := b.w.Fallocate(mode, off, length)
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
		if _, err := b.w.WriteAt(zeroBlock[:n], off); err != nil {
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
// are unsupported (or on a block device) the whole range is data. A range
// a read-only file no longer holds as served is an error (filecheck.go).
func (b *FileBackend) Extents(off, length int64, max int) ([]protocol.Extent, error) {
	if length <= 0 || max <= 0 {
		return nil, nil
	}
	b.check.recheck() // the slow path, where the map learns regions
	if err := b.check.check(off, length, false); err != nil {
		return nil, err
	}
	if b.alloc == nil || b.noSeekData.Load() {
		return protocol.AddExtent(nil, length, 0), nil
	}
	exts, err := b.alloc.extents(b.fd, off, length, max)
	if errors.Is(err, errNoSeekData) {
		b.noSeekData.Store(true)
		return protocol.AddExtent(nil, length, 0), nil
	}
	return exts, err
}

// ExtentsNoWait implements NoWaitExtents from the allocation map.
func (b *FileBackend) ExtentsNoWait(dst []protocol.Extent, off, length int64, max int) ([]protocol.Extent, bool) {
	if b.check.check(off, length, true) != nil {
		return dst, false // Extents gives the error
	}
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
func (b *FileBackend) Close() error {
	b.closed.Store(true)
	b.check.stop()
	b.learner.Wait() // it must not seek a reused descriptor
	if b.mapped != nil {
		// No reply is sent from it any more: an export is closed
		// once its last connection ended.
		nowait.Unmap(b.mapped)
		b.mapped = nil
	}
	return b.w.Close()
}

// shareAllocation is called by Exports when it opens an export: if
// another export's backend serves the same file (same device, inode and
// size), the two share one allocation map, so that a write through
// either is seen by both; else a sparse file's map is learnt in the
// background, so that its first reads need not wait for it.
func (b *FileBackend) shareAllocation(others []*Export) {
	if b.alloc == nil {
		return
	}
	for _, e := range others {
		if o, ok := e.Backend.(*FileBackend); ok && o != b && o.alloc != nil && o.dev == b.dev && o.ino == b.ino && o.size == b.size {
			b.alloc = o.alloc
			return
		}
	}
	if b.sparse.Load() && !b.noSeekData.Load() {
		b.learner.Go(func() { b.alloc.learnAll(b.fd, &b.closed) })
	}
}

func isNotSupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.ENOTTY)
}
