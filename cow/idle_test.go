package cow

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"
)

// Overlays without a connection hold no file descriptor once their linger
// is over, or at once past MaxIdleOpen: ids invented by the thousand
// cannot exhaust the server's descriptors.

// openFDs counts the process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// cycleClients acquires n persistent overlays one after the other, writes
// block i%16 of client i with byte i+1 and releases it; after each
// release it checks the open descriptors with check.
func cycleClients(t *testing.T, m *Manager, base *testBase, n int, check func(i int)) {
	t.Helper()
	for i := range n {
		ov, release := acquireT(t, m, lab, fmt.Sprintf("pc%d", i), base.be, Policy{Persistent: true})
		if _, err := ov.WriteAt(fill(byte(i+1)), int64(i%16)*bs4k); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 { // half of them flushed (map and journal open), half not
			if err := ov.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		release()
		check(i)
	}
}

// checkReopened reacquires some of cycleClients' overlays and reads their
// block back.
func checkReopened(t *testing.T, m *Manager, base *testBase, n int) {
	t.Helper()
	if got := m.Count(lab); got != n {
		t.Fatalf("%d overlays, want %d", got, n)
	}
	dirs, err := filepath.Glob(filepath.Join(m.dir, lab, "pc*"))
	if err != nil || len(dirs) != n {
		t.Fatalf("%d overlay directories on disk (%v), want %d", len(dirs), err, n)
	}
	for _, i := range []int{0, 1, n / 2, n - 1} {
		ov, release := acquireT(t, m, lab, fmt.Sprintf("pc%d", i), base.be, Policy{Persistent: true})
		got := make([]byte, bs4k)
		if _, err := ov.ReadAt(got, int64(i%16)*bs4k); err != nil {
			t.Fatal(err)
		}
		release()
		if !bytes.Equal(got, fill(byte(i+1))) {
			t.Fatalf("client %d reopened without its block: %#x...", i, got[0])
		}
	}
}

// TestReleasedOverlayClosesAtOnce: with no linger, the last release
// closes the overlay: the descriptor count is back at the baseline after
// every client, the overlays stay on disk and reopen with their data.
func TestReleasedOverlayClosesAtOnce(t *testing.T) {
	base := newTestBase(t, testSize)
	m, err := NewManager(Config{Dir: t.TempDir(), Linger: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	const n = 300
	baseline := openFDs(t)
	cycleClients(t, m, base, n, func(i int) {
		if got := openFDs(t); got > baseline {
			t.Fatalf("after client %d: %d descriptors open, %d before any overlay", i, got, baseline)
		}
	})
	checkReopened(t, m, base, n)
	if got := openFDs(t); got > baseline {
		t.Fatalf("after reopening: %d descriptors open, %d before any overlay", got, baseline)
	}
}

// TestLingeringOverlaysCapped: with a linger, at most MaxIdleOpen overlays
// stay open without a connection (2 descriptors each at most), and none
// once the linger is over.
func TestLingeringOverlaysCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := newTestBase(t, testSize)
		const maxIdle, n = 4, 40
		m, err := NewManager(Config{Dir: t.TempDir(), Linger: 2 * time.Second, MaxIdleOpen: maxIdle})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		baseline := openFDs(t)
		cycleClients(t, m, base, n, func(i int) {
			if got := openFDs(t); got > baseline+2*maxIdle {
				t.Fatalf("after client %d: %d descriptors open, %d before any overlay: more than %d lingering", i, got, baseline, maxIdle)
			}
		})
		m.mu.Lock()
		lingering := len(m.idle)
		m.mu.Unlock()
		if lingering != maxIdle {
			t.Fatalf("%d overlays lingering, want %d", lingering, maxIdle)
		}
		advance(3 * time.Second)
		if got := openFDs(t); got > baseline {
			t.Fatalf("after the linger: %d descriptors open, %d before any overlay", got, baseline)
		}
		checkReopened(t, m, base, n)
	})
}

// BenchmarkReconnect is one client's reconnect (acquire, a 4 KiB write
// and a FLUSH, release) with the overlay closed at every release and
// lingering open, on the real file system:
//
//	go test -run XXX -bench Reconnect ./cow
func BenchmarkReconnect(b *testing.B) {
	for _, lc := range []struct {
		name   string
		linger time.Duration
	}{{"close", -1}, {"linger", time.Minute}} {
		b.Run(lc.name, func(b *testing.B) {
			base := newTestBase(b, benchSize)
			m, err := NewManager(Config{Dir: b.TempDir(), Linger: lc.linger})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			buf := make([]byte, bs4k)
			for i := 0; b.Loop(); i++ {
				ov, release, err := m.Acquire(lab, pc1, base.be, Policy{Persistent: true})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := ov.WriteAt(buf, int64(i%4096)*bs4k); err != nil {
					b.Fatal(err)
				}
				if err := ov.Sync(); err != nil {
					b.Fatal(err)
				}
				release()
			}
		})
	}
}
