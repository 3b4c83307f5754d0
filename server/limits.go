package server

import (
	"math/bits"
	"sync"
)

// byteSem is the server-wide budget of payload bytes held by requests
// in flight, shared fairly among the source addresses with connections
// in transmission: the connections of one address share one budgetShare,
// which may hold at most the budget divided by the number of addresses
// plus one (so a share stays free for an address that connects next). A
// request beyond that is still served when the address holds nothing
// else and taking it leaves such a share free (or when the whole budget
// is free). So clients that stop reading their replies or sending their
// payloads pin at most their address's share until their deadlines end
// them, however many connections they open, and another address can take
// a share. (An attacker with many addresses still gets a share for each.)
// A request larger than the budget takes all of it.
type byteSem struct {
	mu     sync.Mutex
	cond   sync.Cond
	avail  int64
	max    int64
	shares map[string]*budgetShare // by source address
}

// budgetShare is one source address's part of a byteSem; guarded by its
// mu.
type budgetShare struct {
	addr  string
	conns int
	held  int64
}

func newByteSem(max int64) *byteSem {
	s := &byteSem{avail: max, max: max, shares: map[string]*budgetShare{}}
	s.cond.L = &s.mu
	return s
}

func (s *byteSem) clamp(n int64) int64 { return min(n, s.max) }

// join adds a connection from source address addr to the budget.
func (s *byteSem) join(addr string) *budgetShare {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.shares[addr]
	if h == nil {
		h = &budgetShare{addr: addr}
		s.shares[addr] = h
	}
	h.conns++
	return h
}

// leave removes a connection that holds nothing any more; when it was
// its address's last, the shares of the others grow.
func (s *byteSem) leave(h *budgetShare) {
	s.mu.Lock()
	if h.conns--; h.conns == 0 {
		delete(s.shares, h.addr)
	}
	s.mu.Unlock()
	s.cond.Broadcast()
}

// share is what one address may hold: the budget divided among the
// addresses and one more; the caller holds s.mu.
func (s *byteSem) share() int64 { return max(s.max/int64(len(s.shares)+1), 1) }

// fits reports whether h may take n bytes now; the caller holds s.mu.
func (s *byteSem) fits(h *budgetShare, n int64) bool {
	if s.avail < n {
		return false
	}
	sh := s.share()
	return h.held+n <= sh || h.held == 0 && (s.avail-n >= sh || s.avail == s.max)
}

// acquire blocks until h may take n bytes and takes them.
func (s *byteSem) acquire(h *budgetShare, n int64) {
	n = s.clamp(n)
	if n == 0 {
		return
	}
	s.mu.Lock()
	for !s.fits(h, n) {
		s.cond.Wait()
	}
	s.avail -= n
	h.held += n
	s.mu.Unlock()
}

// tryAcquire takes n bytes for h if it may now.
func (s *byteSem) tryAcquire(h *budgetShare, n int64) bool {
	n = s.clamp(n)
	if n == 0 {
		return true
	}
	s.mu.Lock()
	ok := s.fits(h, n)
	if ok {
		s.avail -= n
		h.held += n
	}
	s.mu.Unlock()
	return ok
}

// release gives back n bytes h took.
func (s *byteSem) release(h *budgetShare, n int64) {
	n = s.clamp(n)
	if n == 0 {
		return
	}
	s.mu.Lock()
	s.avail += n
	h.held -= n
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
