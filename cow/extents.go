package cow

import "github.com/nbdboot/nbdboot/protocol"

// Extents serves BLOCK_STATUS for base:allocation: Data blocks are
// data, Zero blocks are holes (reading as zeroes), and Base blocks are
// what the base reports (data if it cannot tell).
func (o *Overlay) Extents(off, length int64, max int) ([]protocol.Extent, error) {
	if err := o.check("block status", off, length); err != nil {
		return nil, err
	}
	if length == 0 || max <= 0 {
		return nil, nil
	}
	end := off + length
	ex := extentList{max: max}
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
			o.baseExtents(&ex, pos, runEnd)
		}
		pos = runEnd
	}
	return ex.out, nil
}

// baseExtents adds the base's allocation of [pos, end).
func (o *Overlay) baseExtents(ex *extentList, pos, end int64) {
	if o.baseExt == nil {
		ex.add(end-pos, 0)
		return
	}
	for pos < end && !ex.full {
		exts, err := o.baseExt.Extents(pos, end-pos, ex.max-len(ex.out)+1)
		if err != nil || len(exts) == 0 {
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
}

// extentList collects runs, merging neighbours, up to max entries.
type extentList struct {
	out  []protocol.Extent
	max  int
	full bool // an extent did not fit: stop
}

func (l *extentList) add(n int64, flags uint32) {
	if l.full || n <= 0 {
		return
	}
	l.out = protocol.AddExtent(l.out, n, flags)
	if len(l.out) > l.max {
		l.out, l.full = l.out[:l.max], true
	}
}
