package server

import (
	"errors"

	"github.com/nbdboot/nbdboot/protocol"
)

// ErrNotFast is returned by Backend.Zero when fast was requested and the
// backend could only zero the range by writing zeroes.
var ErrNotFast = errors.New("zeroing would not be fast")

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
	// A hole has the flags protocol.StateHoleZero, data 0.
	Extents(off, length int64, max int) ([]protocol.Extent, error)
	// MaybeSparse reports whether the backend may contain holes, so that
	// a read is worth splitting into data and holes.
	MaybeSparse() bool
	// Cache asks for the range to be read ahead into the page cache.
	Cache(off, length int64) error
	Close() error
}

// Optional abilities. A backend that wraps another (the fence, an
// overlay's adapter, a metrics layer) implements Wrapper; the abilities
// of a connection's backend are looked up once, when the connection
// starts, along that chain: the first backend that implements an ability
// provides it. A wrapper that must see every read (or every write) of its
// inner backend therefore implements ReadAtNoWait (or WriteAtFUA) itself;
// one that need not, like the fence for reads, leaves it to the backend
// it wraps.

// Wrapper is a Backend layered over another.
type Wrapper interface {
	Unwrap() Backend
}

// NoWaitReader can read what is cached without waiting for the disk.
type NoWaitReader interface {
	// ReadAtNoWait reads len(p) bytes at off if it can without waiting;
	// an error or a short count sends the read to a goroutine that may
	// wait.
	ReadAtNoWait(p []byte, off int64) (int, error)
}

// FUAWriter can make one write durable more cheaply than a write and a
// whole-backend Sync.
type FUAWriter interface {
	WriteAtFUA(p []byte, off int64) error
}

// NoWaitExtents can describe a range from memory, as Extents does, when
// it knows the range without asking the disk.
type NoWaitExtents interface {
	// ExtentsNoWait appends the runs of [off, off+length) to dst, as
	// Extents describes them, and reports true; or reports false when
	// finding them might wait.
	ExtentsNoWait(dst []protocol.Extent, off, length int64, max int) ([]protocol.Extent, bool)
}

// abilities are the optional abilities of a connection's backend; a nil
// field means the backend lacks it.
type abilities struct {
	nowait NoWaitReader // nil: no READ is served on the read loop
	fua    FUAWriter    // nil: FUA is a write then Sync
	// extents, with nowait, lets a READ of a sparse backend be split
	// into data and holes on the read loop; nil: such READs go to a
	// goroutine.
	extents NoWaitExtents
	// lender lends large READs' data in place (mapped.go), and mapped
	// gives the file's mapping (a copy-on-write overlay's base lends it
	// the overlay); only from the backend that reads without waiting,
	// so that a wrapper that must see every read also sees these.
	lender Lender
	mapped MappedReader
}

// maxUnwrap bounds the wrapper chain walked (a cycle is a bug, not a hang).
const maxUnwrap = 16

// abilitiesOf resolves be's abilities along its Unwrap chain.
func abilitiesOf(be Backend) abilities {
	var a abilities
	for range maxUnwrap {
		if be == nil {
			break
		}
		if r, ok := be.(NoWaitReader); ok && a.nowait == nil {
			a.nowait = r
		}
		if w, ok := be.(FUAWriter); ok && a.fua == nil {
			a.fua = w
		}
		if x, ok := be.(NoWaitExtents); ok && a.extents == nil {
			a.extents = x
		}
		w, ok := be.(Wrapper)
		if !ok {
			break
		}
		be = w.Unwrap()
	}
	a.lender, _ = a.nowait.(Lender)
	a.mapped, _ = a.nowait.(MappedReader)
	return a
}
