package cow

import "sync/atomic"

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

// blocksPerWord is how many 2-bit block states one uint32 word holds.
const blocksPerWord = 16

// uniform[s] is a word whose sixteen blocks are all in state s.
var uniform = [3]uint32{0x00000000, 0x55555555, 0xaaaaaaaa}

// stateMap holds two bits per block. Readers load words atomically without
// locks; a word is only modified under the stripe lock covering its blocks
// (a stripe covers whole words), so a load and store never lose an update.
type stateMap struct {
	words  []atomic.Uint32
	blocks int64
}

func newStateMap(blocks int64) *stateMap {
	return &stateMap{words: make([]atomic.Uint32, (blocks+blocksPerWord-1)/blocksPerWord), blocks: blocks}
}

func (m *stateMap) get(b int64) State {
	w := m.words[b/blocksPerWord].Load()
	return State(w >> (uint(b%blocksPerWord) * 2) & 3)
}

// setRun sets blocks [start, start+n) to s and returns how many of them
// were Data before.
func (m *stateMap) setRun(start, n int64, s State) (wasData int64) {
	for b := start; b < start+n; {
		i := b / blocksPerWord
		w := &m.words[i]
		if b%blocksPerWord == 0 && start+n-b >= blocksPerWord {
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
	return wasData
}

// run returns the state of block b and how many blocks from b, up to
// limit (exclusive), share it.
func (m *stateMap) run(b, limit int64) (State, int64) {
	s := m.get(b)
	e := b + 1
	for e < limit {
		if e%blocksPerWord == 0 && limit-e >= blocksPerWord && m.words[e/blocksPerWord].Load() == uniform[s] {
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

// count returns the number of blocks in state Data.
func (m *stateMap) countData() int64 {
	var n int64
	for i := range m.words {
		n += int64(countData(m.words[i].Load()))
	}
	// Padding blocks past the end are Base (0), so they never count.
	return n
}

// hasZero reports whether a block is in state Zero.
func (m *stateMap) hasZero() bool {
	for i := range m.words {
		// Zero is 0b10: the high bit set, the low bit clear.
		if w := m.words[i].Load(); w&^(w<<1)&uniform[StateZero] != 0 {
			return true
		}
	}
	return false
}

func countData(w uint32) int {
	n := 0
	for ; w != 0; w >>= 2 {
		if w&3 == uint32(StateData) {
			n++
		}
	}
	return n
}
