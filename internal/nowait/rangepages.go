package nowait

import "github.com/nbdboot/nbdboot/protocol"

// MaxRange is the longest range a RangePages checks: the largest READ a
// server lends in place.
const MaxRange = 1 << 20

// RangePages is the page-cache residency of one range of a mapping,
// asked with one mincore for the whole range when a part of it is first
// checked.
type RangePages struct {
	m     []byte // the mapping's slice of the range [off, off+len(m))
	off   int64
	pages int // the pages of vec filled; 0 until asked
	vec   [MaxRange/4096 + 2]byte
}

// Range starts the residency of m, a slice of a mapping (nil: none,
// nothing resident) holding the range from off on, at most MaxRange long.
func (l *RangePages) Range(m []byte, off int64) {
	l.m, l.off, l.pages = m, off, 0
}

// Mapped reports whether the range has a mapping.
func (l *RangePages) Mapped() bool { return l.m != nil }

// Slice is [a, b) of the range's mapping.
func (l *RangePages) Slice(a, b int64) []byte {
	return l.m[a-l.off : b-l.off : b-l.off]
}

// Resident reports whether the pages of [a, b), inside the range, are in
// the page cache.
func (l *RangePages) Resident(a, b int64) bool {
	if l.m == nil {
		return false
	}
	if l.pages == 0 {
		v, ok := Pages(l.m, l.vec[:])
		if !ok {
			return false
		}
		l.pages = len(v) // not v itself: l would escape to the heap
	}
	ps := int64(pageSize)
	first := l.off / ps
	return AllIn(l.vec[:l.pages], int(a/ps-first), int((b-1)/ps-first)+1)
}

// ExtentCursor walks a READ's runs of data and holes (nil: all data),
// from the range's start at Pos on.
type ExtentCursor struct {
	Exts []protocol.Extent
	Pos  int64 // where Exts[0] starts
}

// Resident reports whether the data parts of [a, b) are resident in l,
// and moves past b. Runs are asked in order, without gaps.
func (x *ExtentCursor) Resident(l *RangePages, a, b int64) bool {
	if x.Exts == nil {
		return l.Resident(a, b)
	}
	for a < b && len(x.Exts) > 0 {
		e := x.Exts[0]
		eEnd := x.Pos + int64(e.Length)
		to := min(b, eEnd)
		if !e.Zero() && !l.Resident(a, to) {
			return false
		}
		a = to
		if a == eEnd {
			x.Exts, x.Pos = x.Exts[1:], eEnd
		}
	}
	return a >= b || l.Resident(a, b) // past the runs: data
}

// SkipTo moves past b.
func (x *ExtentCursor) SkipTo(b int64) {
	for len(x.Exts) > 0 && x.Pos+int64(x.Exts[0].Length) <= b {
		x.Pos += int64(x.Exts[0].Length)
		x.Exts = x.Exts[1:]
	}
}
