package cow

import (
	"fmt"

	"github.com/nbdboot/nbdboot/protocol"
)

// Extents serves BLOCK_STATUS for base:allocation: Data blocks are
// data, Zero blocks are holes (reading as zeroes), and Base blocks are
// what the base reports (data if it cannot tell; its error if it fails,
// such as a base that shrank while served).
func (o *Overlay) Extents(off, length int64, max int) ([]protocol.Extent, error) {
	if err := o.check("block status", off, length); err != nil {
		return nil, err
	}
	exts, _, err := o.extents(nil, off, length, max, false)
	return exts, err
}

// BaseExtentsNoWait is the optional allocation query of a Base that can
// answer from memory: it appends the runs to dst and reports true, or
// reports false when it would have to ask the disk.
type BaseExtentsNoWait interface {
	ExtentsNoWait(dst []protocol.Extent, off, length int64, max int) ([]protocol.Extent, bool)
}

// ExtentsNoWait is Extents for the server's read loop, appended to dst:
// it reports false when the base could only tell by asking the disk.
func (o *Overlay) ExtentsNoWait(dst []protocol.Extent, off, length int64, max int) ([]protocol.Extent, bool) {
	if o.check("block status", off, length) != nil {
		return dst, false
	}
	exts, ok, _ := o.extents(dst, off, length, max, true)
	return exts, ok
}

func (o *Overlay) extents(dst []protocol.Extent, off, length int64, max int, nowait bool) ([]protocol.Extent, bool, error) {
	if length == 0 || max <= 0 {
		return dst, true, nil
	}
	end := off + length
	ex := extentList{out: dst, start: len(dst), max: max}
	limit := (end-1)>>o.shift + 1
	for pos := off; pos < end && !ex.full; {
		s, n := o.states.run(pos>>o.shift, limit)
		runEnd := min((pos>>o.shift+n)<<o.shift, end)
		switch s {
		case StateData:
			ex.add(runEnd-pos, 0)
		case StateZero:
			ex.add(runEnd-pos, protocol.StateHoleZero)
		default:
			if ok, err := o.baseExtents(&ex, pos, runEnd, nowait); !ok || err != nil {
				return dst, false, err
			}
		}
		pos = runEnd
	}
	return ex.out, true, nil
}

// baseExtents adds the base's allocation of [pos, end); with nowait it
// reports false if the base cannot tell from memory.
func (o *Overlay) baseExtents(ex *extentList, pos, end int64, nowait bool) (bool, error) {
	switch {
	case o.baseExt == nil:
		ex.add(end-pos, 0)
		return true, nil
	case nowait && o.baseExtNW == nil:
		return false, nil
	}
	var local [8]protocol.Extent
	for pos < end && !ex.full {
		want := ex.max - ex.len() + 1
		var exts []protocol.Extent
		var err error
		if nowait {
			var ok bool
			// The base appends its runs in the spare room after the
			// list, and they are copied out before the list grows
			// over them: no allocation per READ.
			tail := ex.out[len(ex.out):len(ex.out)]
			if exts, ok = o.baseExtNW.ExtentsNoWait(tail, pos, end-pos, min(want, len(local))); !ok {
				return false, nil
			}
			exts = local[:copy(local[:], exts)]
		} else if exts, err = o.baseExt.Extents(pos, end-pos, want); err != nil {
			return false, fmt.Errorf("base block status at %d: %w", pos, err)
		}
		if len(exts) == 0 {
			break
		}
		for _, e := range exts {
			n := min(int64(e.Length), end-pos)
			if n <= 0 {
				break
			}
			ex.add(n, e.Flags&protocol.StateHoleZero)
			pos += n
		}
	}
	if pos < end {
		ex.add(end-pos, 0) // unknown: call it data
	}
	return true, nil
}

// extentList collects runs after out[:start], merging neighbours, up to
// max entries.
type extentList struct {
	out   []protocol.Extent
	start int
	max   int
	full  bool // an extent did not fit: stop
}

func (l *extentList) len() int { return len(l.out) - l.start }

func (l *extentList) add(n int64, flags uint32) {
	if l.full || n <= 0 {
		return
	}
	if l.len() == 0 {
		// An empty run to start from: never merged into what the
		// caller's dst held.
		l.out = append(l.out, protocol.Extent{Flags: flags})
	}
	l.out = protocol.AddExtent(l.out, n, flags)
	if l.len() > l.max {
		l.out, l.full = l.out[:l.start+l.max], true
	}
}
