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
	o.locks.lock(fb, le-1, false)
	defer o.locks.unlock(fb, le-1, false)
	if err := o.zeroBlocks(fb, le); err != nil {
		return fmt.Errorf("trim %d bytes at offset %d: %w", length, off, err)
	}
	return nil
}

// ErrNotFast is returned by Zero with fast set when the data file cannot
// be zeroed without writing zeroes (the server maps it to
// server.ErrNotFast).
var ErrNotFast = errors.New("zeroing would not be fast")

// Zero is the server.Backend method. Without noHole, whole blocks become
// Zero: they read as zeroes and leave the data file. With noHole (the
// client wants the range provisioned) they become Data holding zeroes,
// allocated in the data file and counted against the quota. Partial
// blocks at the edges get zeroes written, which turns a Base edge block
// into Data (read-modify-write, counted against the quota). Only a
// noHole request on a file system that can neither zero nor preallocate
// ranges is slow; with fast it fails with ErrNotFast instead, unchanged.
func (o *Overlay) Zero(off, length int64, noHole, fast bool) error {
	if err := o.check("zero", off, length); err != nil {
		return err
	}
	if length == 0 {
		return nil
	}
	end := off + length
	b0, b1 := off>>o.shift, (end-1)>>o.shift
	o.locks.lock(b0, b1, false)
	defer o.locks.unlock(b0, b1, false)
	fb, le := o.wholeBlocks(off, end)
	edges := o.edges(off, end, fb, le)
	var fresh, wholeFresh int64
	for _, e := range edges {
		if o.states.get(e.b) == StateBase {
			fresh++
		}
	}
	if noHole {
		for b := fb; b < le; {
			s, n := o.states.run(b, le)
			if s != StateData {
				wholeFresh += n
			}
			b += n
		}
	}
	if err := o.reserve(fresh + wholeFresh); err != nil {
		return fmt.Errorf("zero %d bytes at offset %d: %w", length, off, err)
	}
	if noHole && fb < le {
		if err := o.allocZeroes(fb, le, fast); err != nil {
			o.dataBlocks.Add(-fresh - wholeFresh)
			return fmt.Errorf("zero %d bytes at offset %d: %w", length, off, err)
		}
		for b := fb; b < le; {
			s, n := o.states.run(b, le)
			if s != StateData {
				o.setRun(b, n, StateData)
			}
			b += n
		}
	}
	for _, e := range edges {
		var err error
		switch o.states.get(e.b) {
		case StateZero:
			continue
		case StateData:
			_, err = o.dataW.WriteAt(o.zeroes[:e.hi-e.lo], e.lo)
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
	if !noHole && fb < le {
		if err := o.zeroBlocks(fb, le); err != nil {
			return fmt.Errorf("zero %d bytes at offset %d: %w", length, off, err)
		}
	}
	return nil
}

// edge is a partial block of a zero request: bytes [lo, hi) of block b.
type edge struct{ b, lo, hi int64 }

// edges returns the partial blocks of [off, end) around the whole blocks
// [fb, le).
func (o *Overlay) edges(off, end, fb, le int64) []edge {
	b0, b1 := off>>o.shift, (end-1)>>o.shift
	var out []edge
	switch {
	case fb >= le && b0 == b1:
		out = append(out, edge{b0, off, end})
	case fb >= le:
		// Two partial blocks and no whole one between them.
		out = append(out, edge{b0, off, o.blockEnd(b0)}, edge{b1, b1 << o.shift, end})
	default:
		if fb > b0 {
			out = append(out, edge{b0, off, fb << o.shift})
		}
		if le <= b1 {
			out = append(out, edge{b1, le << o.shift, end})
		}
	}
	return out
}

// allocZeroes makes blocks [fb, le) of the data file allocated zeroes:
// FALLOC_FL_ZERO_RANGE, else a punched hole preallocated again, else
// (unless fast) written zeroes. The caller holds their write locks.
func (o *Overlay) allocZeroes(fb, le int64, fast bool) error {
	start, end := fb<<o.shift, min(le<<o.shift, o.size)
	err := o.dataW.Fallocate(unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, start, end-start)
	if !notSupported(err) {
		return err
	}
	err = o.dataW.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, start, end-start)
	switch {
	case err == nil:
		err = o.dataW.Fallocate(unix.FALLOC_FL_KEEP_SIZE, start, end-start)
		if !notSupported(err) {
			return err
		}
		// The range is a hole now: zeroes must be written, fast or not.
	case !notSupported(err):
		return err
	case fast:
		return ErrNotFast
	}
	for pos := start; pos < end; pos += o.bs {
		if _, err := o.dataW.WriteAt(o.zeroes[:min(o.bs, end-pos)], pos); err != nil {
			return err
		}
	}
	return nil
}

func notSupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS)
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
	err := o.dataW.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, start, end-start)
	if err != nil && !notSupported(err) {
		return fmt.Errorf("punch data file at %d+%d: %w", start, end-start, err)
	}
	o.dataBlocks.Add(-o.setRun(fb, le-fb, StateZero))
	return nil
}
