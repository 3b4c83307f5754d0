package nowait

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Read-only mappings whose pages are sent by system calls (writev) in
// place, and the page-cache residency checks that keep such a send from
// waiting for the disk. Go code must never read such a mapping: a page
// the file no longer has (truncated under us) or cannot read (an I/O
// error) would kill the process with SIGBUS, where a system call reads
// it and fails with EFAULT.

// Map maps size bytes of fd read-only and shared; nil when it cannot.
func Map(fd int, size int64) []byte {
	if size <= 0 || int64(int(size)) != size {
		return nil
	}
	m, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil
	}
	return m
}

// Unmap undoes Map (nil does nothing).
func Unmap(m []byte) {
	if m != nil {
		unix.Munmap(m)
	}
}

// mincoreChunk is the pages one mincore call of Resident checks.
const mincoreChunk = 128

// Resident reports whether every page under p, a slice of a mapping, is
// in the page cache.
func Resident(p []byte) bool {
	var vec [mincoreChunk]byte
	for len(p) > 0 {
		start := uintptr(unsafe.Pointer(&p[0]))
		n := min(len(p), int(mincoreChunk*pageSize-start&(pageSize-1)))
		v, ok := Pages(p[:n], vec[:])
		if !ok || !AllIn(v, 0, len(v)) {
			return false
		}
		p = p[n:]
	}
	return true
}

// pageSize is the size of a page.
var pageSize = uintptr(unix.Getpagesize())

// PageSize is the size of a page, the unit of Pages' vector.
func PageSize() int { return int(pageSize) }

// Pages fills vec with the residency of the pages under p, a slice of a
// mapping, one byte per page from the page holding p[0] on (bit 0 set: in
// the page cache), with one system call, and returns the filled part. It
// fails when vec is too short or the call fails.
func Pages(p []byte, vec []byte) ([]byte, bool) {
	if len(p) == 0 {
		return vec[:0], true
	}
	addr := uintptr(unsafe.Pointer(&p[0]))
	start := addr &^ (pageSize - 1)
	n := int((addr + uintptr(len(p)) - start + pageSize - 1) / pageSize)
	if n > len(vec) {
		return nil, false
	}
	// Raw: mincore only looks at page tables and the page cache.
	_, _, e := unix.RawSyscall(unix.SYS_MINCORE, start, uintptr(n)*pageSize, uintptr(unsafe.Pointer(&vec[0])))
	if e != 0 {
		return nil, false
	}
	return vec[:n], true
}

// AllIn reports whether pages [i, j) of a vector Pages filled are all in
// the page cache.
func AllIn(vec []byte, i, j int) bool {
	for _, v := range vec[i:j] {
		if v&1 == 0 {
			return false
		}
	}
	return true
}
