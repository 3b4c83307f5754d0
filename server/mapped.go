package server

import (
	"github.com/nbdboot/nbdboot/internal/nowait"
	"github.com/nbdboot/nbdboot/protocol"
)

// Large READs sent from the page cache in place. A READ's data is
// normally copied twice by the server: from the page cache into a buffer
// (pread) and from the buffer into the socket (writev). For a large READ
// of data the page cache holds, the first copy is the costly one (the
// pages are cold in the processor's caches; the buffer is warm): a file
// backend maps its file read-only once, and such a READ's reply is
// written straight from the mapping, header and data in one writev, with
// no buffer. A copy-on-write overlay lends its READs the same way, as
// slices of the base's mapping and of its data file's (cow/mapped.go),
// holding the blocks' read locks until the reply has left. That is only
// done where it cannot wait for the disk or fail after the header: every
// page of the range's data must be in the page cache (mincore), and the
// reply is written by raw writev (not through a Go writer such as TLS,
// which would touch the mapping itself: a file truncated under the
// server would then kill the process; a writev reports EFAULT instead,
// which breaks just the connection). Small READs gain nothing from it
// (the residency check costs what the pread it saves does) and keep
// their buffer.

// minMapped is the smallest READ sent from the mapping.
const minMapped = 64 << 10

// MappedReader gives a backend's bytes in place from a read-only mapping
// of its file.
type MappedReader interface {
	// Mapped returns [off, off+n) of the mapping, or nil when the
	// backend is not mapped. Only system calls may read it.
	Mapped(off, n int64) []byte
}

// Lender lends a READ's data in place.
type Lender interface {
	// Lend appends to dst the slices of read-only mappings that hold
	// [off, off+n), in order, and reports ok, when every page of the
	// range's data (what exts does not mark as holes; nil: all of it)
	// is in the page cache; else ok is false and nothing is held. Only
	// system calls may read the slices, and the bytes of hole runs are
	// not meant to be sent. With held, the slices stay unchanged until
	// Unlend(off, n) is called, which must follow once the reply has
	// left.
	Lend(dst [][]byte, off, n int64, exts []protocol.Extent) (segs [][]byte, held, ok bool)
	Unlend(off, n int64)
}

// Lend implements Lender: the file's mapping, held by nothing (a write
// may change it while it is sent, as it may change the page cache while
// a pread copies it), for ranges up to nowait.MaxRange.
func (b *FileBackend) Lend(dst [][]byte, off, n int64, exts []protocol.Extent) ([][]byte, bool, bool) {
	if n <= 0 || n > nowait.MaxRange {
		return dst, false, false
	}
	var pages nowait.RangePages
	pages.Range(b.Mapped(off, n), off)
	x := nowait.ExtentCursor{Exts: exts, Pos: off}
	if !pages.Mapped() || !x.Resident(&pages, off, off+n) {
		return dst, false, false
	}
	return append(dst, pages.Slice(off, off+n)), false, true
}

// Unlend implements Lender; a file holds nothing.
func (b *FileBackend) Unlend(off, n int64) {}
