package server

import (
	"math/bits"
	"sync"
)

// byteSem is a server-wide counting semaphore on payload bytes held by
// requests in flight. A request larger than the cap takes the whole cap.
type byteSem struct {
	mu    sync.Mutex
	cond  sync.Cond
	avail int64
	max   int64
}

func newByteSem(max int64) *byteSem {
	s := &byteSem{avail: max, max: max}
	s.cond.L = &s.mu
	return s
}

func (s *byteSem) clamp(n int64) int64 { return min(n, s.max) }

// acquire blocks until n bytes are available and takes them.
func (s *byteSem) acquire(n int64) {
	n = s.clamp(n)
	if n == 0 {
		return
	}
	s.mu.Lock()
	for s.avail < n {
		s.cond.Wait()
	}
	s.avail -= n
	s.mu.Unlock()
}

// tryAcquire takes n bytes if they are available now.
func (s *byteSem) tryAcquire(n int64) bool {
	n = s.clamp(n)
	if n == 0 {
		return true
	}
	s.mu.Lock()
	ok := s.avail >= n
	if ok {
		s.avail -= n
	}
	s.mu.Unlock()
	return ok
}

func (s *byteSem) release(n int64) {
	n = s.clamp(n)
	if n == 0 {
		return
	}
	s.mu.Lock()
	s.avail += n
	s.mu.Unlock()
	s.cond.Broadcast()
}

// Buffer pool: one sync.Pool per power-of-two size class from 4 KiB to
// 32 MiB (the largest payload).
const (
	minClassShift = 12
	maxClassShift = 25
)

var bufPools [maxClassShift - minClassShift + 1]sync.Pool

func sizeClass(n int) int {
	if n <= 1<<minClassShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minClassShift
}

// getBuf returns a buffer of length n from the pool.
func getBuf(n int) *[]byte {
	c := sizeClass(n)
	if c >= len(bufPools) {
		b := make([]byte, n)
		return &b
	}
	if p, ok := bufPools[c].Get().(*[]byte); ok {
		*p = (*p)[:n]
		return p
	}
	b := make([]byte, n, 1<<(c+minClassShift))
	return &b
}

// putBuf returns a buffer from getBuf to the pool.
func putBuf(p *[]byte) {
	c := sizeClass(cap(*p))
	if c >= len(bufPools) || cap(*p) != 1<<(c+minClassShift) {
		return
	}
	bufPools[c].Put(p)
}
