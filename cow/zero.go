package cow

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Trim is the server.Backend method: whole blocks in the range become Zero
// and their space in the data file is released; partial blocks at the
// edges are left alone (TRIM is a hint).
func (o *Overlay) Trim(off, length int64) error {
	if err := o.check("trim", off, length); err != nil {
		return err
	}
	fb, le := o.wholeBlocks(off, off+length)
	if fb >= le {
		return nil
	}
	defer o.locks.lock(fb, le-1, false)()
	if err := o.zeroBlocks(fb, le); err != nil {
		return fmt.Errorf("trim %d bytes at offset %d: %w", length, off, err)
	}
	return nil
}

// Zero is the server.Backend method. Whole blocks become Zero (whatever
// noHole says: they read as zeroes, and the overlay never promised that
// the space stays allocated); partial blocks at the edges get zeroes
// written, which turns a Base edge block into Data (read-modify-write,
// counted against the quota). It is always fast, so fast is ignored.
func (o *Overlay) Zero(off, length int64, noHole, fast bool) error {
	if err := o.check("zero", off, length); err != nil {
		return err
	}
	if length == 0 {
		return nil
	}
	end := off + length
	b0, b1 := off>>o.shift, (end-1)>>o.shift
	defer o.locks.lock(b0, b1, false)()
	fb, le := o.wholeBlocks(off, end)
	// The partial edges: [off, head) in block b0 and [tail, end) in b1.
	type edge struct {
		b, lo, hi int64
	}
	var edges []edge
	if fb >= le {
		// No whole block: at most two partial blocks.
		if b0 == b1 {
			edges = append(edges, edge{b0, off, end})
		} else {
			edges = append(edges, edge{b0, off, o.blockEnd(b0)}, edge{b1, b1 << o.shift, end})
		}
	} else {
		if fb > b0 {
			edges = append(edges, edge{b0, off, fb << o.shift})
		}
		if le <= b1 {
			edges = append(edges, edge{b1, le << o.shift, end})
		}
	}
	var fresh int64
	for _, e := range edges {
		if o.states.get(e.b) == StateBase {
			fresh++
		}
	}
	if err := o.reserve(fresh); err != nil {
		return fmt.Errorf("zero %d bytes at offset %d: %w", length, off, err)
	}
	for _, e := range edges {
		var err error
		switch o.states.get(e.b) {
		case StateZero:
			continue
		case StateData:
			_, err = o.data.WriteAt(o.zeroes[:e.hi-e.lo], e.lo)
		case StateBase:
			if err = o.rmw(e.b, o.zeroes[:e.hi-e.lo], e.lo); err == nil {
				o.setRun(e.b, 1, StateData)
				fresh--
			}
		}
		if err != nil {
			o.dataBlocks.Add(-fresh)
			return fmt.Errorf("zero %d bytes at offset %d: block %d: %w", length, off, e.b, err)
		}
	}
	if fb < le {
		if err := o.zeroBlocks(fb, le); err != nil {
			return fmt.Errorf("zero %d bytes at offset %d: %w", length, off, err)
		}
	}
	return nil
}

// wholeBlocks returns the blocks [fb, le) that lie wholly inside
// [off, end); the short last block counts as whole when end is the size.
func (o *Overlay) wholeBlocks(off, end int64) (fb, le int64) {
	fb = (off + o.bs - 1) >> o.shift
	le = end >> o.shift
	if end == o.size {
		le = o.blocks
	}
	return fb, le
}

// zeroBlocks turns blocks [fb, le) into Zero, releasing their space in the
// data file first. The caller holds their write locks.
func (o *Overlay) zeroBlocks(fb, le int64) error {
	start, end := fb<<o.shift, min(le<<o.shift, o.size)
	err := unix.Fallocate(o.dfd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, start, end-start)
	if err != nil && !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
		return fmt.Errorf("punch data file %s at %d+%d: %w", o.data.Name(), start, end-start, err)
	}
	o.dataBlocks.Add(-o.setRun(fb, le-fb, StateZero))
	return nil
}
