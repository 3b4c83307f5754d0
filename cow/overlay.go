package cow

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/nbdboot/nbdboot/internal/disk"
	"github.com/nbdboot/nbdboot/internal/nowait"
	"github.com/nbdboot/nbdboot/protocol"
)

// ErrQuota is wrapped by the error of a write that would take the overlay
// past its quota. Such a write has no effect.
var ErrQuota = errors.New("overlay quota exceeded")

// ErrClosed is returned by operations on a closed overlay.
var ErrClosed = errors.New("overlay closed")

// DefaultBlockSize is the overlay's block size unless Options say otherwise.
const DefaultBlockSize = 4096

// Base is the read-only image under an overlay. If it also implements
// BaseExtents, holes in the base are reported as holes by the overlay's
// Extents (the server's cowBase turns a server.Backend into one).
type Base interface {
	io.ReaderAt
	Size() int64
}

// BaseNoWait is the optional non-blocking read of a Base: it reads len(p)
// bytes at off only if it can without waiting for the disk, else it
// fails or returns a short count.
type BaseNoWait interface {
	ReadAtNoWait(p []byte, off int64) (int, error)
}

// BaseExtents is the optional allocation query of a Base.
type BaseExtents interface {
	Extents(off, length int64, max int) ([]protocol.Extent, error)
}

// Options tune an overlay.
type Options struct {
	// BlockSize is the copy-on-write granularity: a power of two from
	// 512 to 1 MiB, DefaultBlockSize if zero. An existing overlay must
	// be reopened with the block size it was created with.
	BlockSize int
	// Quota caps the bytes of Data blocks (the overlay's own data);
	// zero means no cap.
	Quota int64
	// FS is the file system seam the overlay changes its files through;
	// nil means the real one (disk.OS). Tests inject a power-loss model.
	FS disk.FS
	// kept is a mapping of the data file kept from the overlay's last
	// close (the Manager's, keptmap.go): Open takes it over if it is of
	// the same file, else releases it.
	kept *keptMap
	// closedCleanly says the overlay was last closed by this process
	// and its Close succeeded: nothing has written its files since, so
	// its data file holds no block a crash left without a state (set
	// only by the Manager, which knows; reclaim is skipped).
	closedCleanly bool
}

// Overlay is a per-client copy-on-write layer over a read-only base. It
// has the methods of server.Backend and is safe for concurrent use by any
// number of connections.
type Overlay struct {
	dir         string
	base        Base
	baseExt     BaseExtents
	baseNW      BaseNoWait        // nil if the base has none
	baseExtNW   BaseExtentsNoWait // nil if the base has none
	baseMap     BaseMapped        // nil if the base has none
	baseSparse  bool              // the base may have holes
	size        int64
	shift       uint32
	bs          int64
	blocks      int64
	quotaBlocks int64 // 0: no quota

	fs    disk.FS
	data  *os.File  // reads; dataW.OS()
	dataW disk.File // writes and syncs
	dfd   int
	// dmap is the data file mapped read-only (nil if it could not be),
	// from which Lend lends Data blocks; unmapped by Close, or handed
	// to the Manager to keep (keptmap.go).
	dmap       []byte
	ddev, dino uint64                      // the data file's identity, for keeping dmap
	dataNW     atomic.Pointer[nowait.File] // see dataNoWait
	states     *stateMap
	locks      stripes

	dataBlocks atomic.Int64 // blocks in state Data, plus reservations

	pendMu  sync.Mutex
	pending []record // state changes not yet in the journal, in order

	syncMu  sync.Mutex // serialises Sync, compaction and Close
	journal disk.File
	jsize   int64
	gen     uint64
	jbroken bool // the journal may end in a torn record: compact next
	unsaved bool // new, no map or journal on disk yet: compact at the first Sync with changes
	// dirsPending: the entries above a new overlay's directory are not
	// yet durable: set by its first map, cleared once makeDirDurable
	// succeeds.
	dirsPending bool
	closed      bool
	failed      atomic.Pointer[error] // sticky: a data fdatasync failed
	bufs        sync.Pool
	zeroes      []byte
	// zeroSeen is set once a block may be Zero (never cleared).
	zeroSeen atomic.Bool
	testHook func(name string) error // runs before a state file rename
	// compactAt is the journal size above which Sync rewrites the map
	// (journalFull); 0 rewrites it at every Sync.
	compactAt int64
}

// Size is the server.Backend method: the base's size.
func (o *Overlay) Size() int64 { return o.size }

// BlockSize is the overlay's copy-on-write granularity in bytes.
func (o *Overlay) BlockSize() int { return int(o.bs) }

// Allocated is the number of bytes in Data blocks: what the quota counts.
func (o *Overlay) Allocated() int64 { return o.dataBlocks.Load() << o.shift }

// Dir is the directory the overlay is stored in.
func (o *Overlay) Dir() string { return o.dir }

// MaybeSparse is the server.Backend method: whether reads are worth
// splitting into data and holes. An overlay holds holes once a block has
// been trimmed or zeroed; its Base blocks if the base may be sparse (a
// base with Extents but no MaybeSparse method is assumed to be).
func (o *Overlay) MaybeSparse() bool {
	return o.zeroSeen.Load() || o.baseSparse
}

// setBase sets the base and the abilities it has, resolved once.
func (o *Overlay) setBase(base Base) {
	o.base = base
	o.baseExt, _ = base.(BaseExtents)
	o.baseNW, _ = base.(BaseNoWait)
	o.baseExtNW, _ = base.(BaseExtentsNoWait)
	o.baseMap, _ = base.(BaseMapped)
	o.baseSparse = o.baseExt != nil
	if ms, ok := base.(interface{ MaybeSparse() bool }); ok && o.baseSparse {
		o.baseSparse = ms.MaybeSparse()
	}
}

// Cache is the server.Backend method; the overlay does no read-ahead.
func (o *Overlay) Cache(off, length int64) error { return nil }

func (o *Overlay) check(op string, off int64, n int64) error {
	if off < 0 || n < 0 || off > o.size || n > o.size-off {
		return fmt.Errorf("%s %d bytes at offset %d: outside the %d-byte overlay", op, n, off, o.size)
	}
	if p := o.failed.Load(); p != nil {
		return fmt.Errorf("%s at offset %d: overlay %s failed earlier: %w", op, off, o.dir, *p)
	}
	return nil
}

// blockEnd is the end offset of block b (the last block may be short).
func (o *Overlay) blockEnd(b int64) int64 { return min((b+1)<<o.shift, o.size) }

// ReadAt is the server.Backend method.
func (o *Overlay) ReadAt(p []byte, off int64) (int, error) { return o.read(p, off, false) }

// ErrWouldBlock is returned by ReadAtNoWait when the read would wait.
var ErrWouldBlock = nowait.ErrWouldBlock

// ReadAtNoWait is the server's non-blocking read: it reads p at off only
// if it can without waiting, for a write holding the blocks' locks or for
// the disk (base blocks through the base's BaseNoWait, Data blocks from
// the data file's cached pages); otherwise it fails with ErrWouldBlock
// and the caller reads with ReadAt.
func (o *Overlay) ReadAtNoWait(p []byte, off int64) (int, error) { return o.read(p, off, true) }

func (o *Overlay) read(p []byte, off int64, nowait bool) (int, error) {
	if err := o.check("read", off, int64(len(p))); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	b0, b1 := off>>o.shift, (off+int64(len(p))-1)>>o.shift
	if o.states.allBase(b0, b1) {
		// No lock: all the blocks were Base at once, and the base
		// never changes (stateMap.allBase). A write to them that is
		// under way is not seen, as if it came after this read.
		if err := o.readBase(p, off, nowait); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if !nowait {
		o.locks.lock(b0, b1, true)
		defer o.locks.unlock(b0, b1, true)
	} else if o.locks.tryRLock(b0, b1) {
		defer o.locks.runlock(b0, b1)
	} else {
		return 0, ErrWouldBlock
	}
	if err := o.readRuns(p, off, nowait); err != nil {
		return 0, err
	}
	return len(p), nil
}

// readRuns reads p at off run by run of block states: Base from the
// base, Data from the data file, Zero as zeroes. The caller holds the
// blocks' read locks. With nowait a run that would wait for the disk
// fails the read with ErrWouldBlock.
func (o *Overlay) readRuns(p []byte, off int64, nowait bool) error {
	end := off + int64(len(p))
	b1 := (end - 1) >> o.shift
	for pos := off; pos < end; {
		s, n := o.states.run(pos>>o.shift, b1+1)
		runEnd := min((pos>>o.shift+n)<<o.shift, end)
		buf := p[pos-off : runEnd-off]
		var err error
		switch s {
		case StateBase:
			err = o.readBase(buf, pos, nowait)
		case StateData:
			if nowait {
				if readFull(o.dataNoWait(), buf, pos) != nil {
					err = ErrWouldBlock
				}
			} else if e := readFull(o.data, buf, pos); e != nil {
				err = fmt.Errorf("read %d bytes at offset %d (%s): %w", len(buf), pos, s, e)
			}
		default:
			clear(buf)
		}
		if err != nil {
			return err
		}
		pos = runEnd
	}
	return nil
}

// readBase reads p at off from the base; with nowait only if it can
// without waiting, else it fails with ErrWouldBlock.
func (o *Overlay) readBase(p []byte, off int64, nowait bool) error {
	if nowait {
		if o.baseNW == nil {
			return ErrWouldBlock
		}
		if n, err := o.baseNW.ReadAtNoWait(p, off); err != nil || n < len(p) {
			return ErrWouldBlock
		}
		return nil
	}
	if err := readFull(o.base, p, off); err != nil {
		return fmt.Errorf("read %d bytes at offset %d (%s): %w", len(p), off, StateBase, err)
	}
	return nil
}

// dataNoWait reads the data file without waiting (made at first use).
func (o *Overlay) dataNoWait() *nowait.File {
	if f := o.dataNW.Load(); f != nil {
		return f
	}
	o.dataNW.CompareAndSwap(nil, nowait.New(o.dfd))
	return o.dataNW.Load()
}

func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// WriteAt is the server.Backend method. Blocks it turns from Base or Zero
// into Data count against the quota; if they would exceed it the write
// fails with ErrQuota and changes nothing.
func (o *Overlay) WriteAt(p []byte, off int64) (int, error) {
	if err := o.check("write", off, int64(len(p))); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	b0, b1 := off>>o.shift, (off+int64(len(p))-1)>>o.shift
	o.locks.lock(b0, b1, false)
	defer o.locks.unlock(b0, b1, false)
	var fresh int64
	for b := b0; b <= b1; {
		s, n := o.states.run(b, b1+1)
		if s != StateData {
			fresh += n
		}
		b += n
	}
	if err := o.reserve(fresh); err != nil {
		return 0, fmt.Errorf("write %d bytes at offset %d: %w", len(p), off, err)
	}
	if err := o.writeBlocks(p, off); err != nil {
		o.dataBlocks.Add(-fresh)
		return 0, fmt.Errorf("write %d bytes at offset %d: %w", len(p), off, err)
	}
	if fresh > 0 {
		for b := b0; b <= b1; {
			s, n := o.states.run(b, b1+1)
			if s != StateData {
				o.setRun(b, n, StateData)
			}
			b += n
		}
	}
	return len(p), nil
}

// writeBlocks puts p at off into the data file. The caller holds the
// blocks' write locks. A partial write to a block not yet in Data first
// fills the rest of the block from what it reads as now (read-modify-write),
// so that a Data block never holds bytes it did not have.
func (o *Overlay) writeBlocks(p []byte, off int64) error {
	end := off + int64(len(p))
	hb, tb := off>>o.shift, (end-1)>>o.shift
	from, to := off, end
	if o.states.get(hb) != StateData && (off != hb<<o.shift || end < o.blockEnd(hb)) {
		if err := o.rmw(hb, p, off); err != nil {
			return err
		}
		from = o.blockEnd(hb)
	}
	if tb != hb && o.states.get(tb) != StateData && end < o.blockEnd(tb) {
		if err := o.rmw(tb, p, off); err != nil {
			return err
		}
		to = tb << o.shift
	}
	if to > from {
		if _, err := o.dataW.WriteAt(p[from-off:to-off], from); err != nil {
			return err
		}
	}
	return nil
}

// rmw writes block b whole: its current content with p (at off) applied.
func (o *Overlay) rmw(b int64, p []byte, off int64) error {
	bp := o.bufs.Get().(*[]byte)
	defer o.bufs.Put(bp)
	start := b << o.shift
	blk := (*bp)[:o.blockEnd(b)-start]
	if o.states.get(b) == StateBase {
		if err := readFull(o.base, blk, start); err != nil {
			return fmt.Errorf("read base block %d: %w", b, err)
		}
	} else {
		clear(blk)
	}
	lo, hi := max(off, start), min(off+int64(len(p)), start+int64(len(blk)))
	copy(blk[lo-start:], p[lo-off:hi-off])
	if _, err := o.dataW.WriteAt(blk, start); err != nil {
		return err
	}
	return nil
}

// reserve counts n more Data blocks against the quota.
func (o *Overlay) reserve(n int64) error {
	if n == 0 {
		return nil
	}
	if o.quotaBlocks == 0 {
		o.dataBlocks.Add(n)
		return nil
	}
	for {
		cur := o.dataBlocks.Load()
		if cur+n > o.quotaBlocks {
			return fmt.Errorf("%w: %d of %d bytes in use, %d more needed", ErrQuota,
				cur<<o.shift, o.quotaBlocks<<o.shift, n<<o.shift)
		}
		if o.dataBlocks.CompareAndSwap(cur, cur+n) {
			return nil
		}
	}
}

// setRun changes the state of blocks [b, b+n) in memory and queues the
// change for the journal. It returns how many were Data before. The
// caller holds the blocks' write locks and has done the data file I/O.
func (o *Overlay) setRun(b, n int64, s State) int64 {
	if s == StateZero {
		o.zeroSeen.Store(true)
	}
	wasData := o.states.setRun(b, n, s)
	o.pendMu.Lock()
	if k := len(o.pending); k > 0 && o.pending[k-1].state == s && o.pending[k-1].start+o.pending[k-1].count == b {
		o.pending[k-1].count += n
	} else {
		o.pending = append(o.pending, record{start: b, count: n, state: s})
	}
	o.pendMu.Unlock()
	return wasData
}
