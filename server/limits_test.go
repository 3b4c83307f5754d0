package server

import "testing"

func TestBufferPool(t *testing.T) {
	for _, tt := range []struct{ n, class, capacity int }{
		{0, 0, 4096}, {1, 0, 4096}, {4096, 0, 4096}, {4097, 1, 8192},
		{1 << 20, 8, 1 << 20}, {1<<20 + 1, 9, 2 << 20}, {32 << 20, 13, 32 << 20},
	} {
		if c := sizeClass(tt.n); c != tt.class {
			t.Errorf("sizeClass(%d) = %d, want %d", tt.n, c, tt.class)
		}
		b := getBuf(tt.n)
		if len(*b) != tt.n || cap(*b) != tt.capacity {
			t.Errorf("getBuf(%d): len %d cap %d, want cap %d", tt.n, len(*b), cap(*b), tt.capacity)
		}
		putBuf(b)
	}
	// Larger than the largest class: allocated, never pooled.
	b := getBuf(33 << 20)
	if len(*b) != 33<<20 {
		t.Fatalf("getBuf(33 MiB): len %d", len(*b))
	}
	putBuf(b)
}

func TestByteSem(t *testing.T) {
	s := newByteSem(100)
	a := s.join("a")
	s.acquire(a, 40, nil) // alone: a share is half (one address more may come)
	got := make(chan struct{})
	go func() {
		s.acquire(a, 500, nil) // clamped to the whole cap: waits for the 40
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("acquired past the cap")
	default:
	}
	s.release(a, 40)
	<-got // blocks (until the test times out) if release does not wake it
	s.mu.Lock()
	avail := s.avail
	s.mu.Unlock()
	if avail != 0 {
		t.Errorf("avail %d, want 0", avail)
	}
	s.release(a, 500)
	if s.avail != 100 || a.held != 0 {
		t.Errorf("avail %d held %d after release, want 100 and 0", s.avail, a.held)
	}
}

// TestByteSemFairShare: an address may hold at most the budget divided
// by the addresses and one more; one request beyond that only while it
// holds nothing else and leaves a share free; the connections of one
// address share its share.
func TestByteSemFairShare(t *testing.T) {
	s := newByteSem(120)
	a, a2, b := s.join("a"), s.join("a"), s.join("b") // two addresses: a share is 40
	if a != a2 {
		t.Fatal("two connections of one address got two shares")
	}
	c := s.join("c") // three: 30
	for _, tt := range []struct {
		name string
		h    *budgetShare
		n    int64
		ok   bool
	}{
		{"a within its share", a, 20, true},
		{"a's second connection past the address's share", a2, 11, false},
		{"b: a big one, leaving a share free", b, 60, true},
		{"b: more while holding", b, 1, false},
		{"c within its share", c, 11, true},
		{"c: past its share while holding", c, 20, false},
	} {
		if got := s.tryAcquire(tt.h, tt.n, nil); got != tt.ok {
			t.Errorf("%s: tryAcquire(%d) = %v, want %v", tt.name, tt.n, got, tt.ok)
		}
	}
	// b leaves: the shares grow to 40, and a may take 20 more.
	s.release(b, 60)
	s.leave(b)
	if !s.tryAcquire(a, 20, nil) {
		t.Error("share did not grow when an address left")
	}
	// Alone with all free, one request may take the whole budget.
	s.release(a, 40)
	s.release(c, 11)
	s.leave(c)
	s.leave(a2)
	if !s.tryAcquire(a, 500, nil) || s.avail != 0 {
		t.Errorf("alone: whole budget not taken, avail %d", s.avail)
	}
}

// TestByteSemPayloadTurn: the oldest sliced payload takes its slices
// even past the budget, the others wait their turn; a payload that is
// all its address holds goes past the address's share while a share
// stays free, as one large request does.
func TestByteSemPayloadTurn(t *testing.T) {
	s := newByteSem(120)
	a, b, c := s.join("a"), s.join("b"), s.join("c") // a share is 30
	t1, t2, t3 := s.startPayload(), s.startPayload(), s.startPayload()
	steps := []struct {
		name string
		h    *budgetShare
		n    int64
		turn *payloadTurn
		ok   bool
	}{
		{"c: its second payload's slice within the share", c, 20, t3, true},
		{"c: past the share, alone, leaving a share free", c, 20, t3, true},
		{"c: past the share, leaving no share free", c, 60, t3, false},
		{"b: a large request, leaving a share free", b, 50, nil, true},
		{"a: a request within its share", a, 25, nil, true},
		{"a: the second payload, over the budget", a, 10, t2, false},
		{"a: the oldest payload, over the budget", a, 10, t1, true},
	}
	for _, tt := range steps {
		if got := s.tryAcquire(tt.h, tt.n, tt.turn); got != tt.ok {
			t.Fatalf("%s: tryAcquire(%d) = %v, want %v", tt.name, tt.n, got, tt.ok)
		}
	}
	s.endPayload(t1)
	if !s.tryAcquire(a, 10, t2) {
		t.Fatal("the second payload, oldest now: refused")
	}
	if s.avail != -15 || t3.held != 40 || t2.held != 10 {
		t.Errorf("avail %d, payload held %d and %d; want -15, 40 and 10", s.avail, t3.held, t2.held)
	}
	s.release(a, 45)
	s.release(b, 50)
	s.release(c, 40)
	s.endPayload(t2)
	s.endPayload(t3)
	if s.avail != 120 || len(s.payloads) != 0 {
		t.Errorf("avail %d, %d payloads queued, want 120 and none", s.avail, len(s.payloads))
	}
}

// TestByteSemLastShare: an address that holds bytes takes more only
// while a share stays free, even within its own share: the last share is
// left to an address holding nothing.
func TestByteSemLastShare(t *testing.T) {
	s := newByteSem(120)
	a, b := s.join("a"), s.join("b") // a share is 40
	if !s.tryAcquire(a, 40, nil) {
		t.Fatal("a: its share refused")
	}
	c, d := s.join("c"), s.join("d") // a share is 24
	for _, h := range []*budgetShare{b, c} {
		if !s.tryAcquire(h, 24, nil) {
			t.Fatalf("%s: its share refused", h.addr)
		}
	}
	if !s.tryAcquire(d, 20, nil) { // 12 left
		t.Fatal("d: 20 refused")
	}
	if s.tryAcquire(d, 4, nil) {
		t.Fatal("d took 4 more within its share, leaving less than a share free")
	}
	e := s.join("e") // a share is 20
	if !s.tryAcquire(e, 12, nil) {
		t.Fatal("e, holding nothing: the rest refused")
	}
}
