package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/protocol"
)

// holdBackend holds the first WriteAt until release is closed; entered
// is closed when it arrives, later is closed when a later WriteAt arrives.
type holdBackend struct {
	*memBackend
	n         atomic.Int32
	entered   chan struct{}
	release   chan struct{}
	later     chan struct{}
	laterOnce sync.Once
}

func (b *holdBackend) WriteAt(p []byte, off int64) (int, error) {
	if b.n.Add(1) == 1 {
		close(b.entered)
		<-b.release
	} else {
		b.laterOnce.Do(func() { close(b.later) })
	}
	return b.memBackend.WriteAt(p, off)
}

// goClient dials addr (optionally from local) and negotiates export.
func goClient(t *testing.T, addr, local, export string) *protocol.Client {
	t.Helper()
	c, err := goClientErr(t, addr, local, export)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// goClientErr is goClient returning the handshake's error.
func goClientErr(t *testing.T, addr, local, export string) (*protocol.Client, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s from %q: %w", addr, local, err)
	}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { nc.Close() })
	neg, err := protocol.ClientHandshake(nc, protocol.ClientOptions{Export: export, Structured: true})
	if err != nil {
		return nil, fmt.Errorf("handshake for %q from %s: %w", export, local, err)
	}
	return protocol.NewClient(nc, neg), nil
}

// TestFenceOldWriteLandsFirst: a client's first connection has a write
// held in the backend; its second connection writes the same block. The
// second connection's write must be applied last, whichever way the
// scheduler goes: the test releases the old write as soon as either the
// server's fence waits or the new write reaches the backend.
func TestFenceOldWriteLandsFirst(t *testing.T) {
	hb := &holdBackend{memBackend: newMemBackend(1 << 20), entered: make(chan struct{}),
		release: make(chan struct{}), later: make(chan struct{})}
	tab, err := NewExports(&Export{Name: "mem", Backend: hb})
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{})
	var waitOnce sync.Once
	ts := startServer(t, tab, testLimits(), func(s *Server) {
		s.fence.onWait = func() { waitOnce.Do(func() { close(waiting) }) }
	})
	old := bytes.Repeat([]byte{0x01}, 4096)
	fresh := bytes.Repeat([]byte{0x02}, 4096)

	c1 := goClient(t, ts.addr, "", "mem")
	errs := make(chan error, 2)
	go func() { _, err := c1.WriteAt(old, 8192, 0); errs <- err }()
	<-hb.entered
	c2 := goClient(t, ts.addr, "", "mem")
	go func() { _, err := c2.WriteAt(fresh, 8192, 0); errs <- err }()
	select {
	case <-waiting:
	case <-hb.later:
		t.Error("the new connection's write reached the backend while the old one's was in flight")
	case <-time.After(20 * time.Second):
		t.Fatal("neither the fence waited nor the new write arrived")
	}
	close(hb.release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("WRITE: %v", err)
		}
	}
	if got := hb.snapshot(8192, 4096); !bytes.Equal(got, fresh) {
		t.Errorf("block holds %#x..., want the new connection's write %#x...", got[0], fresh[0])
	}
}

// nopKill counts the kills of a fence member.
type nopKill struct{ n atomic.Int32 }

func (k *nopKill) kill() { k.n.Add(1) }

// TestFenceStaleAndTimeout: an old connection with a change outstanding
// longer than the stale bound is closed at once, one whose change does
// not end within the wait is closed when the wait ends; both refuse
// later changes with errFenced, and the new connection is served.
func TestFenceStaleAndTimeout(t *testing.T) {
	for _, tt := range []struct {
		name  string
		stale time.Duration
		age   time.Duration // of the old change when the new connection comes
	}{
		{"stale", time.Second, 2 * time.Second},
		{"wait ends", time.Hour, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFence(Limits{ReplyTimeout: tt.stale}, slogDiscard())
			f.wait = 50 * time.Millisecond
			var k1, k2 nopKill
			be := newMemBackend(1 << 16)
			old, leaveOld := f.enter("x", be, k1.kill)
			defer leaveOld()
			m := old.(*fenceMember)
			seq, err := m.begin() // a change that never ends
			if err != nil {
				t.Fatal(err)
			}
			f.now = func() time.Time { return time.Now().Add(tt.age) }
			start := time.Now()
			fresh, leave := f.enter("x", be, k2.kill)
			defer leave()
			if k1.n.Load() != 1 || k2.n.Load() != 0 {
				t.Errorf("kills: old %d new %d, want 1 and 0", k1.n.Load(), k2.n.Load())
			}
			if _, err := old.WriteAt([]byte{1}, 0); !errors.Is(err, errFenced) {
				t.Errorf("WRITE on the fenced connection: %v, want errFenced", err)
			}
			if _, err := fresh.WriteAt([]byte{2}, 0); err != nil {
				t.Errorf("WRITE on the new connection: %v", err)
			}
			if tt.age == 0 && time.Since(start) < f.wait {
				t.Errorf("enter returned after %v, before the wait of %v ended", time.Since(start), f.wait)
			}
			m.end(seq)
		})
	}
}

// TestFenceOtherIdentities: changes of other identities, and changes
// that have ended, do not hold a new connection up.
func TestFenceOtherIdentities(t *testing.T) {
	f := newFence(Limits{ReplyTimeout: time.Hour}, slogDiscard())
	f.onWait = func() { t.Error("fence waited") }
	var k nopKill
	be := newMemBackend(1 << 16)
	a, leaveA := f.enter("a", be, k.kill)
	defer leaveA()
	seq, _ := a.(*fenceMember).begin()
	_, leaveB := f.enter("b", be, k.kill) // another identity: no wait
	leaveB()
	a.(*fenceMember).end(seq)
	_, leaveA2 := f.enter("a", be, k.kill)
	defer leaveA2()
	if k.n.Load() != 0 {
		t.Errorf("%d connections closed", k.n.Load())
	}
}

func TestFenceIdentity(t *testing.T) {
	tcp := func(s string) net.Addr { a, _ := net.ResolveTCPAddr("tcp", s); return a }
	for _, tt := range []struct {
		exp  *Export
		peer net.Addr
		want string
	}{
		{&Export{Name: "lab/pc1", client: "lab/pc1"}, tcp("127.0.0.2:4000"), "overlay lab/pc1"},
		{&Export{Name: "disk"}, tcp("127.0.0.2:4000"), "export disk from 127.0.0.2"},
		{&Export{Name: "disk"}, tcp("127.0.0.2:4001"), "export disk from 127.0.0.2"},           // port ignored
		{&Export{Name: "disk"}, tcp("[::ffff:10.0.0.1]:9"), "export disk from 10.0.0.1"},       // v4-mapped
		{&Export{Name: "disk"}, tcp("[fe80::1%lo]:9"), "export disk from fe80::1"},             // zone dropped
		{&Export{Name: "disk"}, &net.UnixAddr{Name: "@x", Net: "unix"}, "export disk from @x"}, // not IP
	} {
		if got := identity(tt.exp, tt.peer); got != tt.want {
			t.Errorf("identity(%q, %v) = %q, want %q", tt.exp.Name, tt.peer, got, tt.want)
		}
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestFenceClosesStuckConnection: when the old connection's write does
// not finish within the fence's wait, the new connection is served and
// the old one is closed.
func TestFenceClosesStuckConnection(t *testing.T) {
	hb := &holdBackend{memBackend: newMemBackend(1 << 20), entered: make(chan struct{}),
		release: make(chan struct{}), later: make(chan struct{})}
	defer func() {
		select {
		case <-hb.release:
		default:
			close(hb.release)
		}
	}()
	tab, err := NewExports(&Export{Name: "mem", Backend: hb})
	if err != nil {
		t.Fatal(err)
	}
	lim := testLimits()
	lim.ReplyTimeout = 200 * time.Millisecond // the fence waits this long
	ts := startServer(t, tab, lim)
	c1 := goClient(t, ts.addr, "", "mem")
	errs := make(chan error, 1)
	go func() { _, err := c1.WriteAt(make([]byte, 4096), 0, 0); errs <- err }()
	<-hb.entered
	c2 := goClient(t, ts.addr, "", "mem")
	if _, err := c2.WriteAt(bytes.Repeat([]byte{2}, 4096), 8192, 0); err != nil {
		t.Fatalf("new connection's WRITE: %v", err)
	}
	close(hb.release)
	if err := <-errs; err == nil {
		t.Error("the stuck connection got a reply; want it closed by the fence")
	}
}
