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
	a := s.join()
	s.acquire(a, 60)
	got := make(chan struct{})
	go func() {
		s.acquire(a, 500) // clamped to the whole cap: waits for the 60
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("acquired past the cap")
	default:
	}
	s.release(a, 60)
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

// TestByteSemFairShare: a connection may hold at most the budget divided
// by the connections sharing it; one request beyond that only while it
// holds nothing else and leaves a share free; so others can always take
// their share.
func TestByteSemFairShare(t *testing.T) {
	s := newByteSem(120)
	a, b, c := s.join(), s.join(), s.join() // share: 40
	for _, tt := range []struct {
		name string
		h    *budgetShare
		n    int64
		ok   bool
	}{
		{"a within its share", a, 30, true},
		{"a past its share", a, 20, false},
		{"b: a big one, leaving a share free", b, 50, true},
		{"b: more while holding", b, 1, false},
		{"c: big, would leave less than a share", c, 41, false},
		{"c within its share", c, 40, true},
	} {
		if got := s.tryAcquire(tt.h, tt.n); got != tt.ok {
			t.Errorf("%s: tryAcquire(%d) = %v, want %v", tt.name, tt.n, got, tt.ok)
		}
	}
	// b leaves: the shares grow to 60, and a may take 30 more.
	s.release(b, 50)
	s.leave(b)
	if !s.tryAcquire(a, 30) {
		t.Error("share did not grow when a connection left")
	}
	// Alone with all free, one request may take the whole budget.
	s.release(a, 60)
	s.release(c, 40)
	s.leave(c)
	if !s.tryAcquire(a, 500) || s.avail != 0 {
		t.Errorf("alone: whole budget not taken, avail %d", s.avail)
	}
}
