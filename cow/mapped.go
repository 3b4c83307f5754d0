package cow

import (
	"github.com/nbdboot/nbdboot/internal/nowait"
	"github.com/nbdboot/nbdboot/protocol"
)

// BaseMapped is the optional in-place access of a Base: the server's
// read-only mapping of its file, from which it sends large READs without
// copying them into a buffer first.
type BaseMapped interface {
	// Mapped returns [off, off+n) of the mapping, or nil. Only system
	// calls may read it.
	Mapped(off, n int64) []byte
}

// maxLend is the largest range Lend lends (the server's largest READ
// served on its read loop).
const maxLend = 1 << 20

// zeroSeg is what Zero blocks are lent from.
var zeroSeg = make([]byte, 64<<10)

// Lend lends [off, off+n) in place for a large READ, so that it costs
// what it costs on the plain export: it appends to dst, in order, slices
// of the base's mapping (Base blocks), of the data file's mapping (Data
// blocks) and of zeroes (Zero blocks), when every page of them that is
// data by exts (what a structured READ sends; nil: all) is in the page
// cache, and reports ok; else ok is false and nothing is held. Only
// system calls may read the slices (the server's writev).
//
// A range of Base blocks only is lent without a lock, as it is read (see
// read): the blocks were all Base when seen and the base never changes,
// however late the server sends it. Otherwise the blocks' read locks are
// taken, without waiting (held), and kept until Unlend(off, n): writes,
// TRIM and WRITE_ZEROES to the blocks wait for the send, so the lent
// Data pages do not change under it and the READ sees each block as it
// was at one moment, as ReadAt does. Only writes of this overlay's own
// client ever wait, and only while its READ's reply is sent (at most the
// server's stall timeout).
func (o *Overlay) Lend(dst [][]byte, off, n int64, exts []protocol.Extent) (segs [][]byte, held, ok bool) {
	if n <= 0 || n > maxLend || o.check("read", off, n) != nil {
		return dst, false, false
	}
	b0, b1 := off>>o.shift, (off+n-1)>>o.shift
	if o.states.allBase(b0, b1) {
		segs, ok = o.lendRuns(dst, off, n, exts)
		return segs, false, ok
	}
	if o.dmap == nil || !o.locks.tryRLock(b0, b1) {
		return dst, false, false
	}
	if segs, ok = o.lendRuns(dst, off, n, exts); !ok {
		o.locks.runlock(b0, b1)
		return dst, false, false
	}
	return segs, true, true
}

// Unlend ends a lend that held [off, off+n).
func (o *Overlay) Unlend(off, n int64) {
	o.locks.runlock(off>>o.shift, (off+n-1)>>o.shift)
}

// lendPages is the residency of a range's pages in one mapping, asked
// with one system call for the whole range when a run of it is first
// checked.
type lendPages struct {
	m     []byte // the mapping's slice of the range [off, off+n)
	off   int64
	pages int // the pages of vec filled; 0 until asked
	vec   [maxLend/4096 + 2]byte
}

// resident reports whether the pages of [a, b), inside the range, are in
// the page cache.
func (l *lendPages) resident(a, b int64) bool {
	if l.m == nil {
		return false
	}
	if l.pages == 0 {
		v, ok := nowait.Pages(l.m, l.vec[:])
		if !ok {
			return false
		}
		l.pages = len(v) // not v itself: l would escape to the heap
	}
	ps := int64(nowait.PageSize())
	first := l.off / ps
	return nowait.AllIn(l.vec[:l.pages], int(a/ps-first), int((b-1)/ps-first)+1)
}

// lendRuns appends the slices of [off, off+n) run by run of block
// states, checking the residency of the parts exts marks as data.
func (o *Overlay) lendRuns(dst [][]byte, off, n int64, exts []protocol.Extent) ([][]byte, bool) {
	base := lendPages{off: off}
	if o.baseMap != nil {
		base.m = o.baseMap.Mapped(off, n)
	}
	data := lendPages{off: off}
	if o.dmap != nil {
		data.m = o.dmap[off : off+n : off+n]
	}
	end := off + n
	b1 := (end - 1) >> o.shift
	x := extCursor{exts: exts, pos: off}
	for pos := off; pos < end; {
		s, k := o.states.run(pos>>o.shift, b1+1)
		runEnd := min((pos>>o.shift+k)<<o.shift, end)
		var from *lendPages
		switch s {
		case StateBase:
			from = &base
		case StateData:
			from = &data
		default:
			x.skipTo(runEnd)
			for p := pos; p < runEnd; {
				k := min(runEnd-p, int64(len(zeroSeg)))
				dst = append(dst, zeroSeg[:k:k])
				p += k
			}
			pos = runEnd
			continue
		}
		if from.m == nil || !x.resident(from, pos, runEnd) {
			return dst, false
		}
		dst = append(dst, from.m[pos-off:runEnd-off:runEnd-off])
		pos = runEnd
	}
	return dst, true
}

// extCursor walks a READ's runs of data and holes (nil: all data), from
// the range's start at pos on.
type extCursor struct {
	exts []protocol.Extent
	pos  int64 // where exts[0] starts
}

// resident reports whether the data parts of [a, b) are resident in l,
// and moves past b. Runs are asked in order, without gaps.
func (x *extCursor) resident(l *lendPages, a, b int64) bool {
	if x.exts == nil {
		return l.resident(a, b)
	}
	for a < b && len(x.exts) > 0 {
		e := x.exts[0]
		eEnd := x.pos + int64(e.Length)
		to := min(b, eEnd)
		if !e.Zero() && !l.resident(a, to) {
			return false
		}
		a = to
		if a == eEnd {
			x.exts, x.pos = x.exts[1:], eEnd
		}
	}
	return a >= b || l.resident(a, b) // past the runs: data
}

// skipTo moves past b.
func (x *extCursor) skipTo(b int64) {
	for len(x.exts) > 0 && x.pos+int64(x.exts[0].Length) <= b {
		x.pos += int64(x.exts[0].Length)
		x.exts = x.exts[1:]
	}
}
