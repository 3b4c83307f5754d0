package cow

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// The Manager's timers run on the real clock; the tests that wait for
// them run in a testing/synctest bubble, where time.Sleep moves a fake
// clock on at once.

// advance moves the bubble's clock on by d and lets the timers that came
// due finish.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

const (
	lab = "lab"
	pc1 = "52:54:00:00:00:01"
	pc2 = "52:54:00:00:00:02"
)

func newManagerT(t *testing.T, dir string) *Manager {
	t.Helper()
	m, err := NewManager(Config{Dir: dir, Grace: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func acquireT(t *testing.T, m *Manager, export, client string, base Base, p Policy) (*Overlay, func()) {
	t.Helper()
	ov, release, err := m.Acquire(export, client, base, p)
	if err != nil {
		t.Fatalf("Acquire(%q, %q): %v", export, client, err)
	}
	return ov, release
}

// infoOf returns the Info of export/client, or ok false.
func infoOf(m *Manager, export, client string) (Info, bool) {
	for _, in := range m.List() {
		if in.Export == export && in.Client == client {
			return in, true
		}
	}
	return Info{}, false
}

// reads tells whether the overlay reads b at off.
func reads(t *testing.T, ov *Overlay, off int64, b []byte) bool {
	t.Helper()
	got := make([]byte, len(b))
	if _, err := ov.ReadAt(got, off); err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(got, b)
}

var mark = []byte("written by the client")

func TestManagerEphemeral(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := newTestBase(t, testSize)
		state := t.TempDir()
		m := newManagerT(t, state)
		defer m.Close()

		ov1, rel1 := acquireT(t, m, lab, pc1, base.be, Policy{})
		ov2, rel2 := acquireT(t, m, lab, pc1, base.be, Policy{})
		if ov1 != ov2 {
			t.Fatal("two connections of one client got different overlays")
		}
		other, relOther := acquireT(t, m, "other", pc1, base.be, Policy{})
		if other == ov1 {
			t.Fatal("two exports share an overlay")
		}
		relOther()
		ov1.WriteAt(mark, 100)
		rel1()
		rel1() // a second call does nothing
		if in, _ := infoOf(m, lab, pc1); in.Connections != 1 || in.Size != bs4k || in.Persistent {
			t.Fatalf("after one release: %+v", in)
		}
		rel2()
		if in, _ := infoOf(m, lab, pc1); in.Connections != 0 || !in.LastUse.Equal(time.Now()) {
			t.Fatalf("after both releases: %+v, now %v", in, time.Now())
		}
		// Within the grace period the client comes back to its data.
		advance(59 * time.Second)
		ov, rel := acquireT(t, m, lab, pc1, base.be, Policy{})
		if !reads(t, ov, 100, mark) {
			t.Fatal("reacquired within the grace period: data lost")
		}
		rel()
		advance(59 * time.Second) // the grace restarted at the release
		if _, ok := infoOf(m, lab, pc1); !ok {
			t.Fatal("dropped before the grace period ended")
		}
		dir := ov.Dir()
		advance(time.Second)
		if _, ok := infoOf(m, lab, pc1); ok {
			t.Fatal("still listed after the grace period")
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("overlay directory %s still there: %v", dir, err)
		}
		ov, rel = acquireT(t, m, lab, pc1, base.be, Policy{})
		defer rel()
		if !reads(t, ov, 100, base.content[100:100+len(mark)]) {
			t.Fatal("a dropped overlay came back")
		}
	})
}

func TestManagerPersistent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := newTestBase(t, testSize)
		state := t.TempDir()
		m := newManagerT(t, state)
		p := Policy{Persistent: true}
		ov, rel := acquireT(t, m, lab, pc1, base.be, p)
		ov.WriteAt(mark, 100)
		rel()
		advance(24 * time.Hour) // closed, not dropped
		if in, ok := infoOf(m, lab, pc1); !ok || !in.Persistent || in.Size != bs4k {
			t.Fatalf("persistent overlay after a day: %+v, %v", in, ok)
		}
		ov, rel = acquireT(t, m, lab, pc1, base.be, p)
		if !reads(t, ov, 100, mark) {
			t.Fatal("persistent overlay lost its data")
		}
		rel()
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		// A server restart a week later.
		advance(7 * 24 * time.Hour)
		m = newManagerT(t, state)
		defer m.Close()
		if in, ok := infoOf(m, lab, pc1); !ok || !in.Persistent || in.Size != bs4k || in.Connections != 0 {
			t.Fatalf("after restart: %+v, %v", in, ok)
		}
		ov, rel = acquireT(t, m, lab, pc1, base.be, p)
		defer rel()
		if !reads(t, ov, 100, mark) {
			t.Fatal("persistent overlay lost its data across a restart")
		}
	})
}

func TestManagerRestartEphemeral(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := newTestBase(t, testSize)
		state := t.TempDir()
		m := newManagerT(t, state)
		for _, c := range []string{pc1, pc2} {
			ov, rel := acquireT(t, m, lab, c, base.be, Policy{})
			ov.WriteAt(mark, 100)
			if c == pc2 {
				advance(40 * time.Second)
			}
			rel()
		}
		m.Close()
		// 30 s after pc2 left, 70 s after pc1 did.
		advance(30 * time.Second)
		m = newManagerT(t, state)
		defer m.Close()
		if _, ok := infoOf(m, lab, pc1); ok {
			t.Fatal("pc1, idle past its grace, survived the restart")
		}
		if _, ok := infoOf(m, lab, pc2); !ok {
			t.Fatal("pc2, within its grace, dropped at the restart")
		}
		advance(29 * time.Second)
		ov, rel := acquireT(t, m, lab, pc2, base.be, Policy{})
		if !reads(t, ov, 100, mark) {
			t.Fatal("pc2 lost its data across a restart within the grace")
		}
		rel()
		advance(time.Minute)
		if _, ok := infoOf(m, lab, pc2); ok {
			t.Fatal("pc2 not dropped after its grace")
		}
	})
}

func TestManagerReset(t *testing.T) {
	base := newTestBase(t, testSize)
	m := newManagerT(t, t.TempDir())
	defer m.Close()
	ov1, rel1 := acquireT(t, m, lab, pc1, base.be, Policy{Persistent: true})
	ov1.WriteAt(mark, 0)
	_, rel2 := acquireT(t, m, lab, pc2, base.be, Policy{Persistent: true})
	rel2()
	if err := m.Reset(lab, pc1); !errors.Is(err, ErrBusy) {
		t.Fatalf("reset of a connected client: %v", err)
	}
	if err := m.Reset(lab, "nobody"); !errors.Is(err, ErrNoOverlay) {
		t.Fatalf("reset of an unknown client: %v", err)
	}
	n, err := m.ResetAll(lab)
	if n != 1 || !errors.Is(err, ErrBusy) {
		t.Fatalf("ResetAll with one busy client: %d, %v", n, err)
	}
	if _, ok := infoOf(m, lab, pc2); ok {
		t.Fatal("pc2 still listed after ResetAll")
	}
	rel1()
	if err := m.Reset(lab, pc1); err != nil {
		t.Fatal(err)
	}
	if l := m.List(); len(l) != 0 {
		t.Fatalf("List after resets: %+v", l)
	}
	ov, rel := acquireT(t, m, lab, pc1, base.be, Policy{})
	defer rel()
	if !reads(t, ov, 0, base.content[:len(mark)]) {
		t.Fatal("reset overlay still has its data")
	}
}

func TestManagerBadNames(t *testing.T) {
	base := newTestBase(t, testSize)
	state := t.TempDir()
	m := newManagerT(t, state)
	defer m.Close()
	for _, c := range [][2]string{{lab, "../etc"}, {lab, ".."}, {lab, "a/b"}, {"..", pc1}, {"", pc1}, {lab, ""}} {
		if _, _, err := m.Acquire(c[0], c[1], base.be, Policy{}); err == nil {
			t.Errorf("Acquire(%q, %q) succeeded", c[0], c[1])
		}
	}
	entries, _ := os.ReadDir(state)
	if len(entries) != 0 {
		t.Fatalf("bad names left %v in the state directory", entries)
	}
	// A hostile but legal name stays inside the state directory.
	ov, rel := acquireT(t, m, lab, "..\\x %2F", base.be, Policy{})
	defer rel()
	if rel, err := filepath.Rel(state, ov.Dir()); err != nil || filepath.Dir(filepath.Dir(rel)) != "." {
		t.Fatalf("overlay directory %s outside %s", ov.Dir(), state)
	}
	small := newTestBase(t, bs4k)
	if _, _, err := m.Acquire(lab, "..\\x %2F", small.be, Policy{}); err == nil {
		t.Fatal("acquiring an open overlay over a base of another size succeeded")
	}
}

func TestManagerConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := newTestBase(t, testSize)
		m := newManagerT(t, t.TempDir())
		defer m.Close()
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				client := []string{pc1, pc2}[g%2]
				for i := range 20 {
					ov, rel, err := m.Acquire(lab, client, base.be, Policy{})
					if err != nil {
						t.Error(err)
						return
					}
					ov.WriteAt([]byte{byte(i)}, int64(g))
					m.List()
					rel()
				}
			}()
		}
		wg.Wait()
		for _, in := range m.List() {
			if in.Connections != 0 {
				t.Fatalf("connections left: %+v", in)
			}
		}
		advance(time.Minute)
		if l := m.List(); len(l) != 0 {
			t.Fatalf("not dropped: %+v", l)
		}
	})
}

func TestManagerBaseChanged(t *testing.T) {
	base := newTestBase(t, testSize)
	m := newManagerT(t, t.TempDir())
	defer m.Close()
	v1, v2 := Policy{BaseID: "v1"}, Policy{BaseID: "v2"}
	ov, rel := acquireT(t, m, lab, pc1, base.be, v1)
	ov.WriteAt(mark, 0)
	if _, _, err := m.Acquire(lab, pc1, base.be, v2); !errors.Is(err, ErrBusy) {
		t.Fatalf("acquire over another base while connected: %v", err)
	}
	rel()
	ov, rel = acquireT(t, m, lab, pc1, base.be, v2)
	if !reads(t, ov, 0, base.content[:len(mark)]) {
		t.Fatal("ephemeral overlay kept over a new base")
	}
	rel()

	v1.Persistent, v2.Persistent = true, true
	ov, rel = acquireT(t, m, lab, pc2, base.be, v1)
	ov.WriteAt(mark, 0)
	rel()
	if _, _, err := m.Acquire(lab, pc2, base.be, v2); !errors.Is(err, ErrBaseChanged) {
		t.Fatalf("persistent overlay over a new base: %v", err)
	}
	ov, rel = acquireT(t, m, lab, pc2, base.be, v1)
	defer rel()
	if !reads(t, ov, 0, mark) {
		t.Fatal("persistent overlay lost its data")
	}
}

// TestManagerBrokenMeta: an overlay whose meta data is unreadable is left
// alone at start, and its data is still there when its client comes.
func TestManagerBrokenMeta(t *testing.T) {
	base := newTestBase(t, testSize)
	state := t.TempDir()
	m := newManagerT(t, state)
	p := Policy{Persistent: true}
	ov, rel := acquireT(t, m, lab, pc1, base.be, p)
	ov.WriteAt(mark, 0)
	dir := ov.Dir()
	rel()
	m.Close()
	if err := os.WriteFile(filepath.Join(dir, metaName), []byte("{trunc"), 0o600); err != nil {
		t.Fatal(err)
	}
	m = newManagerT(t, state)
	defer m.Close()
	if l := m.List(); len(l) != 0 {
		t.Fatalf("listed: %+v", l)
	}
	ov, rel = acquireT(t, m, lab, pc1, base.be, p)
	defer rel()
	if !reads(t, ov, 0, mark) {
		t.Fatal("data lost")
	}
	if in, ok := infoOf(m, lab, pc1); !ok || !in.Persistent {
		t.Fatalf("not listed again: %+v", in)
	}
}
