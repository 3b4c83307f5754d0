package server

import "errors"

// ErrNotFast is returned by Backend.Zero when fast was requested and the
// backend could only zero the range by writing zeroes.
var ErrNotFast = errors.New("zeroing would not be fast")

// Extent is a run of an export with one allocation state.
type Extent struct {
	Length int64
	// Hole reports that the run is unallocated and reads as zeroes.
	Hole bool
}

// Backend is the storage behind an export. All methods are safe for
// concurrent use; offsets and lengths have been checked against Size.
type Backend interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	// Size is the export's size in bytes.
	Size() int64
	// Sync makes every completed write durable (fdatasync).
	Sync() error
	// Trim discards the range if it can; it is a hint and may do nothing.
	Trim(off, length int64) error
	// Zero makes the range read as zeroes. With noHole the range stays
	// allocated. With fast, Zero returns ErrNotFast rather than falling
	// back to writing zeroes.
	Zero(off, length int64, noHole, fast bool) error
	// Extents describes [off, off+length) as at most max runs, in order,
	// starting at off; they may cover less than length (never more).
	Extents(off, length int64, max int) ([]Extent, error)
	// MaybeSparse reports whether the backend may contain holes, so that
	// a read is worth splitting into data and holes.
	MaybeSparse() bool
	// Cache asks for the range to be read ahead into the page cache.
	Cache(off, length int64) error
	Close() error
}
