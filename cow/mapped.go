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
	if n <= 0 || n > nowait.MaxRange || o.check("read", off, n) != nil {
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

// lendRuns appends the slices of [off, off+n) run by run of block
// states, checking the residency of the parts exts marks as data.
func (o *Overlay) lendRuns(dst [][]byte, off, n int64, exts []protocol.Extent) ([][]byte, bool) {
	var base, data nowait.RangePages
	if o.baseMap != nil {
		base.Range(o.baseMap.Mapped(off, n), off)
	}
	if o.dmap != nil {
		data.Range(o.dmap[off:off+n:off+n], off)
	}
	end := off + n
	b1 := (end - 1) >> o.shift
	x := nowait.ExtentCursor{Exts: exts, Pos: off}
	for pos := off; pos < end; {
		s, k := o.states.run(pos>>o.shift, b1+1)
		runEnd := min((pos>>o.shift+k)<<o.shift, end)
		var from *nowait.RangePages
		switch s {
		case StateBase:
			from = &base
		case StateData:
			from = &data
		default:
			x.SkipTo(runEnd)
			for p := pos; p < runEnd; {
				k := min(runEnd-p, int64(len(zeroSeg)))
				dst = append(dst, zeroSeg[:k:k])
				p += k
			}
			pos = runEnd
			continue
		}
		if !from.Mapped() || !x.Resident(from, pos, runEnd) {
			return dst, false
		}
		dst = append(dst, from.Slice(pos, runEnd))
		pos = runEnd
	}
	return dst, true
}
