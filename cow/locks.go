package cow

import "sync"

const (
	// stripeCount is the number of block locks; a request locks the
	// stripes of the words (16 blocks each) it touches, in ascending order.
	stripeCount = 256
)

// stripes is a striped reader/writer lock over block-state words. Requests
// on blocks in different words proceed in parallel unless their words map
// to the same stripe; a request locks its stripes in ascending index order,
// so two requests never deadlock.
type stripes struct {
	mu [stripeCount]sync.RWMutex
}

func (s *stripes) indexes(w0, w1 int64) (a0, a1, b0, b1 int) {
	if w1-w0+1 >= stripeCount {
		return 0, stripeCount - 1, 1, 0 // all; empty second range
	}
	i0, i1 := int(w0%stripeCount), int(w1%stripeCount)
	if i0 <= i1 {
		return i0, i1, 1, 0
	}
	return 0, i1, i0, stripeCount - 1
}

// lock locks the stripes of blocks [b0, b1] (inclusive) for writing, or
// for reading when read is set; unlock with the same arguments undoes it.
// (A returned unlock function would cost an allocation per request.)
func (s *stripes) lock(b0, b1 int64, read bool) {
	a0, a1, c0, c1 := s.indexes(b0/blocksPerWord, b1/blocksPerWord)
	for i := a0; i <= a1; i++ {
		s.lockOne(i, read)
	}
	for i := c0; i <= c1; i++ {
		s.lockOne(i, read)
	}
}

// unlock unlocks what lock(b0, b1, read) locked.
func (s *stripes) unlock(b0, b1 int64, read bool) {
	a0, a1, c0, c1 := s.indexes(b0/blocksPerWord, b1/blocksPerWord)
	for i := c1; i >= c0; i-- {
		s.unlockOne(i, read)
	}
	for i := a1; i >= a0; i-- {
		s.unlockOne(i, read)
	}
}

// lockAll locks every stripe for writing.
func (s *stripes) lockAll() func() {
	for i := range s.mu {
		s.mu[i].Lock()
	}
	return func() {
		for i := len(s.mu) - 1; i >= 0; i-- {
			s.mu[i].Unlock()
		}
	}
}

func (s *stripes) lockOne(i int, read bool) {
	if read {
		s.mu[i].RLock()
	} else {
		s.mu[i].Lock()
	}
}

func (s *stripes) unlockOne(i int, read bool) {
	if read {
		s.mu[i].RUnlock()
	} else {
		s.mu[i].Unlock()
	}
}

// tryRLock read-locks the stripes of blocks [b0, b1] if none is held for
// writing, without waiting; it reports whether it did. runlock undoes it.
func (s *stripes) tryRLock(b0, b1 int64) bool {
	a0, a1, c0, c1 := s.indexes(b0/blocksPerWord, b1/blocksPerWord)
	for i := a0; i <= a1; i++ {
		if !s.mu[i].TryRLock() {
			s.runlockRange(a0, i-1, 1, 0)
			return false
		}
	}
	for i := c0; i <= c1; i++ {
		if !s.mu[i].TryRLock() {
			s.runlockRange(a0, a1, c0, i-1)
			return false
		}
	}
	return true
}

// runlock read-unlocks the stripes of blocks [b0, b1].
func (s *stripes) runlock(b0, b1 int64) {
	s.runlockRange(s.indexes(b0/blocksPerWord, b1/blocksPerWord))
}

func (s *stripes) runlockRange(a0, a1, c0, c1 int) {
	for i := c1; i >= c0; i-- {
		s.mu[i].RUnlock()
	}
	for i := a1; i >= a0; i-- {
		s.mu[i].RUnlock()
	}
}
