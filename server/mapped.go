package server

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Large READs sent from the page cache in place. A READ's data is
// normally copied twice by the server: from the page cache into a buffer
// (pread) and from the buffer into the socket (writev). For a large READ
// of data the page cache holds, the first copy is the costly one (the
// pages are cold in the processor's caches; the buffer is warm): a file
// backend maps its file read-only once, and such a READ's reply is
// written straight from the mapping, header and data in one writev, with
// no buffer. That is only done where it cannot wait for the disk or
// fail after the header: every page of the range must be in the page
// cache (mincore, one call), and the reply is written by raw writev (not
// through a Go writer such as TLS, which would touch the mapping itself:
// a file truncated under the server would then kill the process; a
// writev reports EFAULT instead, which breaks just the connection).
// Small READs gain nothing from it (the residency check costs what the
// pread it saves does) and keep their buffer.

// minMapped is the smallest READ sent from the mapping.
const minMapped = 64 << 10

// MappedReader lends a backend's bytes in place from a read-only mapping
// of its file.
type MappedReader interface {
	// Mapped returns [off, off+n) of the mapping, or nil when the
	// backend is not mapped. Only system calls may read it.
	Mapped(off, n int64) []byte
	// Resident reports whether every page of p, a slice of the mapping,
	// is in the page cache, so that sending it cannot wait for the disk.
	Resident(p []byte) bool
}

// mapFile maps size bytes of fd read-only; nil when it cannot.
func mapFile(fd int, size int64) []byte {
	if size <= 0 || int64(int(size)) != size {
		return nil
	}
	m, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil
	}
	return m
}

// mincoreChunk is the pages one mincore call checks.
const mincoreChunk = 128

// resident reports whether every page under p is in the page cache.
func resident(p []byte) bool {
	if len(p) == 0 {
		return true
	}
	page := uintptr(unix.Getpagesize())
	start := uintptr(unsafe.Pointer(&p[0])) &^ (page - 1)
	end := uintptr(unsafe.Pointer(&p[0])) + uintptr(len(p))
	var vec [mincoreChunk]byte
	for start < end {
		n := min((end-start+page-1)/page, mincoreChunk)
		// Raw: mincore only looks at page tables and the page cache.
		_, _, e := unix.RawSyscall(unix.SYS_MINCORE, start, n*page, uintptr(unsafe.Pointer(&vec[0])))
		if e != 0 {
			return false
		}
		for _, v := range vec[:n] {
			if v&1 == 0 {
				return false
			}
		}
		start += n * page
	}
	return true
}
