package server

import (
	"math/bits"
	"slices"
	"sync"
)

// byteSem is the server-wide budget of payload bytes held by requests
// in flight, shared fairly among the source addresses with connections
// in transmission (an address is a source key: neighbors.go). The
// connections of one address share one budgetShare, which may hold at
// most the budget divided by the number of addresses plus one (so a share
// stays free for an address that connects next), and an address that
// holds bytes already takes more only while that leaves a share free: the
// last share is for addresses holding nothing (a first request each). A
// request beyond the share is still served when the address holds
// nothing else and taking it leaves a share free (or when the whole
// budget is free). So clients that stop reading their replies or sending
// their payloads pin at most their address's share until their deadlines
// end them, however many connections they open, and another address can
// take a share. (An attacker with many addresses still gets a share for
// each.)
// A request larger than the budget takes all of it.
//
// A large WRITE's payload is taken in slices as it arrives (payload.go),
// so a partly sent payload holds only what has arrived. A slice of a
// payload that is all its address holds may go past the address's share
// while a share stays free, as one large request may. Payloads being
// read queue oldest first, and the oldest may always take its next slice,
// beyond the budget if need be: so payloads that each wait for bytes
// another holds can never wait for each other for ever, and the budget is
// exceeded by at most one payload's slices (protocol.MaxPayload).
type byteSem struct {
	mu       sync.Mutex
	cond     sync.Cond
	avail    int64
	max      int64
	shares   map[string]*budgetShare // by source address
	payloads []*payloadTurn          // sliced payloads being read, oldest first
}

// payloadTurn is a sliced payload's place in the byteSem's queue, and
// the bytes its slices hold; guarded by the byteSem's mu.
type payloadTurn struct{ held int64 }

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

// fits reports whether h may take n bytes now (for the sliced payload
// turn, nil for any other request); the caller holds s.mu.
func (s *byteSem) fits(h *budgetShare, n int64, turn *payloadTurn) bool {
	if turn != nil && s.payloads[0] == turn {
		return true
	}
	if s.avail < n {
		return false
	}
	sh := s.share()
	if h.held+n <= sh && (h.held == 0 || s.avail-n >= sh) {
		return true
	}
	alone := h.held == 0 || turn != nil && h.held == turn.held
	return alone && (s.avail-n >= sh || s.avail == s.max)
}

// took counts n bytes taken for h (and turn); the caller holds s.mu.
func (s *byteSem) took(h *budgetShare, n int64, turn *payloadTurn) {
	s.avail -= n
	h.held += n
	if turn != nil {
		turn.held += n
	}
}

// acquire blocks until h may take n bytes (for turn, if not nil) and
// takes them.
func (s *byteSem) acquire(h *budgetShare, n int64, turn *payloadTurn) {
	n = s.clamp(n)
	if n == 0 {
		return
	}
	s.mu.Lock()
	for !s.fits(h, n, turn) {
		s.cond.Wait()
	}
	s.took(h, n, turn)
	s.mu.Unlock()
}

// tryAcquire takes n bytes for h (for turn, if not nil) if it may now.
func (s *byteSem) tryAcquire(h *budgetShare, n int64, turn *payloadTurn) bool {
	n = s.clamp(n)
	if n == 0 {
		return true
	}
	s.mu.Lock()
	ok := s.fits(h, n, turn)
	if ok {
		s.took(h, n, turn)
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

// startPayload queues a sliced payload that begins to arrive.
func (s *byteSem) startPayload() *payloadTurn {
	t := new(payloadTurn)
	s.mu.Lock()
	s.payloads = append(s.payloads, t)
	s.mu.Unlock()
	return t
}

// endPayload takes a payload out of the queue once it is read (or its
// connection failed): the next becomes the oldest.
func (s *byteSem) endPayload(t *payloadTurn) {
	s.mu.Lock()
	if i := slices.Index(s.payloads, t); i >= 0 {
		s.payloads = slices.Delete(s.payloads, i, i+1)
	}
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
