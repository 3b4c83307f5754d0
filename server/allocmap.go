package server

import (
	"errors"
	"fmt"
	"math/bits"
	"sync/atomic"

	"github.com/nbdboot/nbdboot/protocol"
	"golang.org/x/sys/unix"
)

// allocMap knows which blocks of a file may hold data, so that a READ of
// a sparse file is split into data and holes from memory: without the
// two lseeks (SEEK_DATA, SEEK_HOLE) per request that would also keep it
// off the read loop (an lseek may read the file's extent tree from
// disk).
//
// The map has one bit per block ("may hold data") and one "known" bit
// per region of 64 blocks (one word of block bits). A region is learnt
// from the file system the first time a request needs it (scan), on a
// goroutine that may wait; from then on it is answered from memory. A
// write marks its blocks before it is issued, so a block that holds data
// is never reported as a hole, whatever the order of a concurrent scan
// and write (a scan only sets bits). A punched hole (TRIM, WRITE_ZEROES)
// clears the blocks wholly inside it once the punch is done, unless a
// write was in flight at any time meanwhile: then they stay marked and
// read as data, which reads as zeroes (correct, just not split). The map
// trusts that only this process writes the file while it is served (a
// base image is read-only; another writer's new data in a known hole
// would read as zeroes).
type allocMap struct {
	size  int64
	shift uint // log2 of the block size
	data  []atomic.Uint64
	known []atomic.Uint64 // one bit per word of data

	writing atomic.Int64  // writes in flight
	writes  atomic.Uint64 // writes begun
	// changed is set once this process wrote or punched the file (its
	// modification time is then no sign of another writer).
	changed atomic.Bool
}

// maxMapBlocks bounds the map: 2^27 blocks (16 MiB of bits); a larger
// file gets larger blocks.
const maxMapBlocks = 1 << 27

func newAllocMap(size int64) *allocMap {
	shift := uint(12) // 4 KiB, the usual file system block
	for size>>shift > maxMapBlocks {
		shift++
	}
	blocks := (size + 1<<shift - 1) >> shift
	words := (blocks + 63) / 64
	return &allocMap{size: size, shift: shift,
		data: make([]atomic.Uint64, words), known: make([]atomic.Uint64, (words+63)/64)}
}

// beginWrite marks [off, off+n) as data before a write; endWrite follows
// the write. Both do nothing on a nil map.
func (m *allocMap) beginWrite(off, n int64) {
	if m == nil {
		return
	}
	m.changed.Store(true)
	m.writing.Add(1)
	m.writes.Add(1)
	m.mark(off, n)
}

func (m *allocMap) endWrite() {
	if m != nil {
		m.writing.Add(-1)
	}
}

// punchToken is what beforePunch saw: whether a write was in flight, and
// how many had begun.
type punchToken struct {
	busy   bool
	writes uint64
}

// beforePunch is called before punching a hole, afterPunch once it is
// punched: it clears the blocks wholly inside [off, off+n) unless a
// write was in flight at any time in between. Both accept a nil map.
func (m *allocMap) beforePunch() punchToken {
	if m == nil {
		return punchToken{}
	}
	m.changed.Store(true)
	return punchToken{busy: m.writing.Load() != 0, writes: m.writes.Load()}
}

func (m *allocMap) afterPunch(off, n int64, t punchToken) {
	if m == nil || t.busy || m.writing.Load() != 0 || m.writes.Load() != t.writes {
		return
	}
	end := min(off+n, m.size)
	b0 := (off + 1<<m.shift - 1) >> m.shift // first whole block
	b1 := end >> m.shift                    // first block not whole
	if end == m.size {
		b1 = (end + 1<<m.shift - 1) >> m.shift // the short last block
	}
	for b := b0; b < b1; {
		w := b / 64
		hi := min(b1, w*64+64) - w*64 // exclusive, within the word
		lo := b - w*64
		mask := (^uint64(0) >> (64 - hi)) &^ (1<<lo - 1)
		m.data[w].And(^mask)
		b = w*64 + hi
	}
}

// mark records that [off, off+n) may hold data.
func (m *allocMap) mark(off, n int64) {
	if n <= 0 || off >= m.size {
		return
	}
	b0, b1 := off>>m.shift, (min(off+n, m.size)-1)>>m.shift
	for w := b0 / 64; w <= b1/64; w++ {
		lo, hi := max(b0, w*64)-w*64, min(b1, w*64+63)-w*64
		m.data[w].Or(^uint64(0) >> (63 - hi) &^ (1<<lo - 1))
	}
}

func (m *allocMap) isKnown(w int64) bool { return m.known[w/64].Load()&(1<<(w%64)) != 0 }

// words returns the range of data words [w0, w1] covering [off, end).
func (m *allocMap) words(off, end int64) (int64, int64) {
	return (off >> m.shift) / 64, ((end - 1) >> m.shift) / 64
}

// extentsNoWait appends [off, off+length) as at most max runs to dst if
// every region of it is known; it reports whether they were.
func (m *allocMap) extentsNoWait(dst []protocol.Extent, off, length int64, max int) ([]protocol.Extent, bool) {
	end := off + length
	w0, w1 := m.words(off, end)
	for w := w0; w <= w1; w++ {
		if !m.isKnown(w) {
			return dst, false
		}
	}
	return m.build(dst, off, end, max), true
}

// extents is extentsNoWait that learns the regions not yet known first,
// from fd (the map may be shared by several descriptors of the file).
func (m *allocMap) extents(fd int, off, length int64, max int) ([]protocol.Extent, error) {
	end := off + length
	w0, w1 := m.words(off, end)
	for w := w0; w <= w1; w++ {
		if m.isKnown(w) {
			continue
		}
		u := w // learn the whole run of unknown regions at once
		for u < w1 && !m.isKnown(u+1) {
			u++
		}
		if err := m.scan(fd, w, u); err != nil {
			return nil, err
		}
		w = u
	}
	return m.build(nil, off, end, max), nil
}

// learnAll learns every region not yet known, a batch at a time, until
// the file is known, stop is set, or the file system fails: so that reads
// find the map ready. It runs on a goroutine of its own.
func (m *allocMap) learnAll(fd int, stop *atomic.Bool) {
	const batch = 1024 // regions per scan
	for w0 := int64(0); w0 < int64(len(m.data)) && !stop.Load(); w0 += batch {
		w1 := min(w0+batch, int64(len(m.data))) - 1
		for w := w0; w <= w1; w++ {
			if !m.isKnown(w) {
				if m.scan(fd, w, w1) != nil {
					return
				}
				break
			}
		}
	}
}

// errNoSeekData reports that the file system cannot tell data from holes.
var errNoSeekData = errors.New("SEEK_DATA unsupported")

// scan learns regions [w0, w1] from the file system through fd: their
// data runs are marked, then they are known.
func (m *allocMap) scan(fd int, w0, w1 int64) error {
	pos, end := (w0*64)<<m.shift, min(((w1+1)*64)<<m.shift, m.size)
	for pos < end {
		data, err := unix.Seek(fd, pos, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // no data after pos
		}
		if err != nil {
			if errors.Is(err, unix.EINVAL) || isNotSupported(err) {
				return errNoSeekData
			}
			return fmt.Errorf("seek data at %d: %w", pos, err)
		}
		if data >= end {
			break
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("seek hole at %d: %w", data, err)
		}
		if hole <= data { // raced with a concurrent write; call a block data
			hole = data + 1
		}
		hole = min(hole, end)
		m.mark(data, hole-data)
		pos = hole
	}
	for w := w0; w <= w1; w++ {
		m.known[w/64].Or(1 << (w % 64))
	}
	return nil
}

// build describes [off, end) from the bits as at most max runs.
func (m *allocMap) build(dst []protocol.Extent, off, end int64, max int) []protocol.Extent {
	start := len(dst)
	limit := (end-1)>>m.shift + 1 // first block past the range
	for pos := off; pos < end && len(dst)-start <= max; {
		b := pos >> m.shift
		data := m.data[b/64].Load()&(1<<(b%64)) != 0
		next := min(m.runEnd(b, data, limit)<<m.shift, end)
		flags := uint32(0)
		if !data {
			flags = protocol.StateHoleZero
		}
		dst = protocol.AddExtent(dst, next-pos, flags)
		pos = next
	}
	return dst[:start+min(len(dst)-start, max)]
}

// runEnd is the first block after b, below limit, whose data bit is not
// data (limit if none).
func (m *allocMap) runEnd(b int64, data bool, limit int64) int64 {
	for w := b / 64; w*64 < limit; w++ {
		x := m.data[w].Load()
		if data {
			x = ^x
		}
		if w == b/64 {
			x &= ^uint64(0) << (b % 64)
		}
		if x != 0 {
			return min(w*64+int64(bits.TrailingZeros64(x)), limit)
		}
	}
	return limit
}
