package cow

import (
	"sync/atomic"
	"unsafe"
)

// State is what a block of an overlay reads as.
type State uint8

const (
	// StateBase blocks read from the base image.
	StateBase State = 0
	// StateData blocks read from the overlay's data file.
	StateData State = 1
	// StateZero blocks read as zeroes (after TRIM or WRITE_ZEROES).
	StateZero State = 2
)

func (s State) String() string {
	switch s {
	case StateBase:
		return "base"
	case StateData:
		return "data"
	case StateZero:
		return "zero"
	}
	return "invalid"
}

const (
	// blocksPerWord is how many 2-bit block states one uint32 word holds.
	blocksPerWord = 16
	// chunkWords is how many words a chunk of the map holds: 16384
	// blocks, 64 MiB of export at 4 KiB blocks, in 4 KiB of memory.
	chunkWords  = 1024
	chunkBlocks = chunkWords * blocksPerWord
	chunkBytes  = chunkWords * 4
)

// uniform[s] is a word whose sixteen blocks are all in state s.
var uniform = [3]uint32{0x00000000, 0x55555555, 0xaaaaaaaa}

// chunk is the states of chunkBlocks consecutive blocks.
type chunk [chunkWords]atomic.Uint32

// filled[s] is a shared chunk whose blocks are all in state s (Data,
// Zero), stood in for a whole chunk set to s at once (a TRIM of the
// whole disk). It is never written: a store into it first copies it
// (writable). Base needs none: a nil chunk is all Base.
var filled = [3]*chunk{nil, newFilled(StateData), newFilled(StateZero)}

func newFilled(s State) *chunk {
	c := new(chunk)
	for i := range c {
		c[i].Store(uniform[s])
	}
	return c
}

// stateMap holds two bits per block in a two-level table: chunks of
// chunkWords words, allocated on the first store of a state other than
// Base into them, so that the map costs memory in proportion to the
// chunks a client changed, not to the export's size.
//
// Readers load chunk pointers and words atomically without locks. A word
// is only modified under the stripe lock covering its blocks (a stripe
// covers whole words), so a load and store never lose an update. A chunk
// pointer changes from nil or a filled chunk to a private copy by
// compare-and-swap (writers of different stripes may race to make it),
// and is replaced wholesale only by a store covering the whole chunk,
// whose caller then holds every stripe (a chunk spans more words than
// there are stripes), so no writer can be storing into the old one.
type stateMap struct {
	chunks []atomic.Pointer[chunk]
	blocks int64
	// private counts the chunks allocated for this map (not the shared
	// filled ones); shared counts the filled ones in use.
	private, shared atomic.Int64
}

func newStateMap(blocks int64) *stateMap {
	return &stateMap{chunks: make([]atomic.Pointer[chunk], (blocks+chunkBlocks-1)/chunkBlocks), blocks: blocks}
}

// words is the number of state words the map covers.
func (m *stateMap) words() int64 { return (m.blocks + blocksPerWord - 1) / blocksPerWord }

// memBytes is the memory the map holds: its table and private chunks.
func (m *stateMap) memBytes() int64 {
	return int64(len(m.chunks))*int64(unsafe.Sizeof(atomic.Pointer[chunk]{})) + m.private.Load()*chunkBytes
}

// word loads state word i.
func (m *stateMap) word(i int64) uint32 {
	c := m.chunks[i/chunkWords].Load()
	if c == nil {
		return 0
	}
	return c[i%chunkWords].Load()
}

func (m *stateMap) get(b int64) State {
	w := m.word(b / blocksPerWord)
	return State(w >> (uint(b%blocksPerWord) * 2) & 3)
}

// filledState reports whether c stands for a chunk all in one state, and
// which.
func filledState(c *chunk) (State, bool) {
	switch c {
	case nil:
		return StateBase, true
	case filled[StateData]:
		return StateData, true
	case filled[StateZero]:
		return StateZero, true
	}
	return 0, false
}

// whole reports whether chunk ci lies wholly inside the map (the last
// chunk may be partial: its blocks past the end stay Base).
func (m *stateMap) whole(ci int64) bool { return (ci+1)*chunkBlocks <= m.blocks }

// writable returns chunk ci ready for word stores: a private copy of
// what it held, made if it was nil or filled.
func (m *stateMap) writable(ci int64) *chunk {
	p := &m.chunks[ci]
	for {
		c := p.Load()
		s, ok := filledState(c)
		if !ok {
			return c
		}
		n := new(chunk)
		if s != StateBase {
			for i := range n {
				n[i].Store(uniform[s])
			}
		}
		if p.CompareAndSwap(c, n) {
			m.private.Add(1)
			if s != StateBase {
				m.shared.Add(-1)
			}
			return n
		}
	}
}

// setChunk replaces chunk ci with c (nil or filled), returning how many
// blocks were Data in the old one. The caller holds every stripe.
func (m *stateMap) setChunk(ci int64, c *chunk) (wasData int64) {
	old := m.chunks[ci].Swap(c)
	if _, ok := filledState(c); ok && c != nil {
		m.shared.Add(1)
	}
	switch s, ok := filledState(old); {
	case !ok:
		m.private.Add(-1)
		for i := range old {
			wasData += int64(countData(old[i].Load()))
		}
	case s == StateData:
		m.shared.Add(-1)
		wasData = chunkBlocks
	case s == StateZero:
		m.shared.Add(-1)
	}
	return wasData
}

// setRun sets blocks [start, start+n) to s and returns how many of them
// were Data before. The caller holds the stripe locks of those blocks.
func (m *stateMap) setRun(start, n int64, s State) (wasData int64) {
	end := start + n
	for b := start; b < end; {
		ci := b / chunkBlocks
		cend := min((ci+1)*chunkBlocks, end)
		if b%chunkBlocks == 0 && cend-b == chunkBlocks && m.whole(ci) {
			wasData += m.setChunk(ci, filled[s])
			b = cend
			continue
		}
		if s == StateBase && m.chunks[ci].Load() == nil {
			b = cend // already Base
			continue
		}
		c := m.writable(ci)
		for b < cend {
			w := &c[b/blocksPerWord%chunkWords]
			if b%blocksPerWord == 0 && cend-b >= blocksPerWord {
				old := w.Swap(uniform[s])
				wasData += int64(countData(old))
				b += blocksPerWord
				continue
			}
			for {
				old := w.Load()
				sh := uint(b%blocksPerWord) * 2
				nw := old&^(3<<sh) | uint32(s)<<sh
				if w.CompareAndSwap(old, nw) {
					if State(old>>sh&3) == StateData {
						wasData++
					}
					break
				}
			}
			b++
		}
	}
	return wasData
}

// run returns the state of block b and how many blocks from b, up to
// limit (exclusive), share it.
func (m *stateMap) run(b, limit int64) (State, int64) {
	s := m.get(b)
	e := b + 1
	for e < limit {
		if e%chunkBlocks == 0 && limit-e >= chunkBlocks {
			if cs, ok := filledState(m.chunks[e/chunkBlocks].Load()); ok && cs == s {
				e += chunkBlocks
				continue
			}
		}
		if e%blocksPerWord == 0 && limit-e >= blocksPerWord && m.word(e/blocksPerWord) == uniform[s] {
			e += blocksPerWord
			continue
		}
		if m.get(e) != s {
			break
		}
		e++
	}
	return s, e - b
}

// allBase reports whether blocks [b0, b1] are all Base. Base is where
// every block starts and no block returns to it while the overlay is
// open, so if each block is seen Base (in ascending order), all were
// Base at once when the first was seen: reading them from the base,
// which never changes, returns what they held then, without locks.
func (m *stateMap) allBase(b0, b1 int64) bool {
	for b := b0; b <= b1; {
		ci := b / chunkBlocks
		cend := min((ci+1)*chunkBlocks, b1+1)
		c := m.chunks[ci].Load()
		if s, ok := filledState(c); ok {
			if s != StateBase {
				return false
			}
			b = cend
			continue
		}
		for b < cend {
			wb := b / blocksPerWord * blocksPerWord
			mask := ^uint32(0) << (uint(b-wb) * 2)
			if last := cend - 1 - wb; last < blocksPerWord-1 {
				mask &= ^uint32(0) >> (uint(blocksPerWord-1-last) * 2)
			}
			if c[b/blocksPerWord%chunkWords].Load()&mask != 0 {
				return false
			}
			b = wb + blocksPerWord
		}
	}
	return true
}

// countData returns the number of blocks in state Data.
func (m *stateMap) countData() int64 {
	var n int64
	for ci := range m.chunks {
		c := m.chunks[ci].Load()
		switch s, ok := filledState(c); {
		case ok && s == StateData:
			n += chunkBlocks
		case !ok:
			for i := range c {
				n += int64(countData(c[i].Load()))
			}
		}
	}
	// Padding blocks past the end are Base (0), so they never count.
	return n
}

// hasZero reports whether a block is in state Zero.
func (m *stateMap) hasZero() bool {
	for ci := range m.chunks {
		c := m.chunks[ci].Load()
		switch s, ok := filledState(c); {
		case ok && s == StateZero:
			return true
		case !ok:
			for i := range c {
				if hasZero(c[i].Load()) {
					return true
				}
			}
		}
	}
	return false
}

// hasZero reports whether a word holds a Zero block (0b10: the high bit
// set, the low bit clear).
func hasZero(w uint32) bool { return w&^(w<<1)&uniform[StateZero] != 0 }

func countData(w uint32) int {
	n := 0
	for ; w != 0; w >>= 2 {
		if w&3 == uint32(StateData) {
			n++
		}
	}
	return n
}
