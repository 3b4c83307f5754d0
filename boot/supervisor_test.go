package boot

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nbdboot/nbdboot/bootcfg"
)

// waitLine reads lines until one contains want.
func waitLine(t *testing.T, lines lineWriter, want string) string {
	t.Helper()
	for l := range lines {
		if strings.Contains(l, want) {
			return l
		}
	}
	t.Fatalf("no line with %q", want)
	return ""
}

func TestSupervisorLinkDead(t *testing.T) {
	lines := make(lineWriter, 100)
	events := make(chan LinkDead)
	reconnected := make(chan State, 1)
	clock := newFakeClock()
	s := &Supervisor{
		State: State{Index: 1, Device: "/dev/nbd1", Target: bootcfg.Address{Server: bootcfg.Server{Host: "a", Port: 10809}, Export: "root"},
			BackendID: "nbd://a:10809/root", Connections: 1},
		Log:   NewLogger(lines, clock),
		Clock: clock,
		Watch: func(ctx context.Context) (<-chan LinkDead, error) { return events, nil },
		Reconnect: func(ctx context.Context, st *State) (Recovery, error) {
			prev := st.Target
			st.Target = bootcfg.Address{Server: bootcfg.Server{Host: "b", Port: 10809}, Export: "root"}
			reconnected <- *st
			return Recovery{Target: st.Target, Previous: prev, Attempts: 2, Sockets: 1}, nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	if l := <-lines; !strings.Contains(l, "supervisor: resident for /dev/nbd1") || !strings.Contains(l, "no failover (one server)") {
		t.Errorf("first line %q", l)
	}
	events <- LinkDead{Index: 0} // another device: ignored
	events <- LinkDead{Index: 1}
	if st := <-reconnected; st.Device != "/dev/nbd1" {
		t.Errorf("reconnected %+v", st)
	}
	waitLine(t, lines, "connection to nbd://a:10809/root lost (LINK_DEAD)")
	waitLine(t, lines, "reconnected to nbd://b:10809/root")
	waitLine(t, lines, "failover: now served by nbd://b:10809/root instead of nbd://a:10809/root")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	if s.State.Target.Host != "b" {
		t.Errorf("state target after the reconnect = %v", s.State.Target)
	}
}

func TestSupervisorWithoutWatch(t *testing.T) {
	var buf bytes.Buffer
	s := &Supervisor{State: State{Device: "/dev/nbd0"}, Log: NewLogger(&buf, newFakeClock()), Clock: newFakeClock(),
		Watch: func(ctx context.Context) (<-chan LinkDead, error) { return nil, errors.New("no nbd family") }}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "LINK_DEAD subscription: no nbd family") {
		t.Errorf("log:\n%s", buf.String())
	}
}

// A read that stays unanswered makes the supervisor reconnect without a
// LINK_DEAD (a lost notification); after the reconnect the next read
// answers and the supervisor logs that I/O resumed.
func TestSupervisorWatchdog(t *testing.T) {
	// In a synctest bubble the real clock is fake and advances only when
	// every goroutine waits: the stuck read is noticed at exactly
	// ProbeEvery + Timeout + stuckSlack, and nothing else happens between.
	synctest.Test(t, func(t *testing.T) {
		lines := make(lineWriter, 1000)
		clock := SystemClock()
		stuck := make(chan struct{})
		var reconnects atomic.Int32
		var once sync.Once
		s := &Supervisor{
			State: State{Index: 0, Device: "/dev/nbd0", Target: bootcfg.Address{Server: bootcfg.Server{Host: "a", Port: 10809}, Export: "root"}, Connections: 1,
				Timeout: 5 * time.Second}, // the watchdog waits Timeout + stuckSlack
			Log: NewLogger(lines, clock), Clock: clock,
			Probe: func(ctx context.Context) error {
				select {
				case <-stuck: // closed by the reconnect
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			},
			Reconnect: func(ctx context.Context, st *State) (Recovery, error) {
				reconnects.Add(1)
				once.Do(func() { close(stuck) })
				return Recovery{Target: st.Target, Previous: st.Target, Attempts: 1, Sockets: 1}, nil
			},
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		start := time.Now()
		go func() { done <- s.Run(ctx) }()
		waitLine(t, lines, "lost (a read unanswered for 20s without LINK_DEAD)")
		if got, want := time.Since(start), defaultProbeEvery+20*time.Second; got != want {
			t.Errorf("stuck read noticed after %s, want %s", got, want)
		}
		waitLine(t, lines, "I/O resumed")
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
		if n := reconnects.Load(); n != 1 {
			t.Errorf("%d reconnects, want 1 (for the stuck read)", n)
		}
	})
}

func TestShellFind(t *testing.T) {
	dir := t.TempDir()
	sh := filepath.Join(dir, "gosh")
	noexec := filepath.Join(dir, "noexec")
	os.WriteFile(sh, []byte("#!"), 0o755)
	os.WriteFile(noexec, []byte("#!"), 0o644)
	s := ConsoleShell{Candidates: []string{filepath.Join(dir, "missing"), noexec, dir, sh}}
	if got, err := s.Find(); err != nil || got != sh {
		t.Errorf("Find = %q, %v", got, err)
	}
	s.Candidates = s.Candidates[:3]
	if _, err := s.Find(); !errors.Is(err, ErrNoShell) {
		t.Errorf("Find = %v, want ErrNoShell", err)
	}
}

// Without a request timeout the kernel never declares a socket dead and a
// reconnect cannot help a stuck read: no watchdog.
func TestSupervisorNoWatchdogWithoutTimeout(t *testing.T) {
	s := &Supervisor{State: State{Device: "/dev/nbd0"}, Clock: newFakeClock(),
		Probe: func(ctx context.Context) error { return nil }}
	if ch := s.watchdog(context.Background()); ch != nil {
		t.Error("watchdog runs with nbdboot.timeout=0")
	}
	s.State.Timeout = 30 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if ch := s.watchdog(ctx); ch == nil {
		t.Error("no watchdog with a 30s request timeout")
	}
}

// A closed LINK_DEAD subscription (the socket failed) is taken again, and
// notifications on the new one are handled.
func TestSupervisorResubscribes(t *testing.T) {
	lines := make(lineWriter, 100)
	clock := newFakeClock()
	subs := make(chan chan LinkDead, 2)
	reconnected := make(chan struct{}, 1)
	s := &Supervisor{
		State: State{Index: 0, Device: "/dev/nbd0", Target: bootcfg.Address{Server: bootcfg.Server{Host: "a", Port: 10809}, Export: "root"}, Connections: 1},
		Log:   NewLogger(lines, clock), Clock: clock,
		Watch: func(ctx context.Context) (<-chan LinkDead, error) {
			ch := make(chan LinkDead)
			subs <- ch
			return ch, nil
		},
		Reconnect: func(ctx context.Context, st *State) (Recovery, error) {
			reconnected <- struct{}{}
			return Recovery{Target: st.Target, Previous: st.Target, Attempts: 1, Sockets: 1}, nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	close(<-subs)
	waitLine(t, lines, "LINK_DEAD subscription closed; subscribing again")
	second := <-subs
	second <- LinkDead{Index: 0}
	<-reconnected
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}
