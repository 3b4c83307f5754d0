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
	s.acquire(60)
	got := make(chan struct{})
	go func() {
		s.acquire(500) // clamped to the whole cap: waits for the 60
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("acquired past the cap")
	default:
	}
	s.release(60)
	<-got // blocks (until the test times out) if release does not wake it
	s.mu.Lock()
	avail := s.avail
	s.mu.Unlock()
	if avail != 0 {
		t.Errorf("avail %d, want 0", avail)
	}
	s.release(500)
	if s.avail != 100 {
		t.Errorf("avail %d after release, want 100", s.avail)
	}
}
