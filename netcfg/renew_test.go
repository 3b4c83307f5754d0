package netcfg

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock hands every After to the test, which advances the time and fires.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits chan fakeWait
}

type fakeWait struct {
	d  time.Duration
	ch chan time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.waits <- fakeWait{d, ch}
	return ch
}

// expectWait waits for the loop's next After, checks its duration, advances
// the clock and fires it.
func (c *fakeClock) expectWait(t *testing.T, want time.Duration) {
	t.Helper()
	w := c.nextWait(t, want)
	c.mu.Lock()
	c.now = c.now.Add(w.d)
	now := c.now
	c.mu.Unlock()
	w.ch <- now
}

// nextWait waits for the loop's next After and checks its duration (any
// positive one if want < 0).
func (c *fakeClock) nextWait(t *testing.T, want time.Duration) fakeWait {
	t.Helper()
	select {
	case w := <-c.waits:
		if want >= 0 && w.d != want || w.d <= 0 {
			t.Fatalf("RenewLoop waits %s, want %s", w.d, want)
		}
		return w
	case <-time.After(20 * time.Second):
		t.Fatalf("RenewLoop did not wait (want %s)", want)
	}
	return fakeWait{}
}

type renewResult struct {
	l   *Lease
	err error
}

func TestRenewLoop(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: t0, waits: make(chan fakeWait)}
	boot := &Lease{Interface: "eth0", Addr: netip.MustParsePrefix("10.99.0.42/24"), Duration: time.Hour,
		T1: 30 * time.Minute, T2: 52*time.Minute + 30*time.Second, Acquired: t0}
	calls := make(chan *Lease)
	results := make(chan renewResult)
	var logMu sync.Mutex
	var logs []string
	renewed := make(chan *Lease, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		done <- RenewLoop(ctx, boot, RenewConfig{
			Clock: clock,
			Renew: func(ctx context.Context, cur *Lease) (*Lease, error) {
				calls <- cur
				r := <-results
				return r.l, r.err
			},
			Logf: func(f string, a ...any) {
				logMu.Lock()
				logs = append(logs, fmt.Sprintf(f, a...))
				logMu.Unlock()
			},
			OnLease:  func(l *Lease) { renewed <- l },
			MinRetry: time.Minute,
		})
	}()
	renewCall := func(want *Lease) {
		t.Helper()
		select {
		case cur := <-calls:
			if cur != want {
				t.Fatalf("Renew got lease %+v, want %+v", cur, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("RenewLoop did not call Renew")
		}
	}
	renewOnce := func(want *Lease, r renewResult) {
		t.Helper()
		renewCall(want)
		results <- r
	}
	fail := renewResult{err: errors.New("no response")}

	clock.expectWait(t, 30*time.Minute) // T1
	renewOnce(boot, fail)
	clock.expectWait(t, 11*time.Minute+15*time.Second) // half of the 22.5 min to T2
	renewOnce(boot, fail)
	clock.expectWait(t, 5*time.Minute+37*time.Second+500*time.Millisecond)
	renewOnce(boot, fail)
	// 5m37.5s left to T2: half is 2m48.75s
	clock.expectWait(t, 2*time.Minute+48*time.Second+750*time.Millisecond)
	for _, w := range []time.Duration{
		84375 * time.Millisecond,     // 2m48.75s left to T2: half
		time.Minute,                  // half of 1m24.375s is below MinRetry
		time.Minute,                  // 24.375s before T2
		207187500 * time.Microsecond, // past T2: half of the 6m54.375s left to expiry
		103593750 * time.Microsecond,
		time.Minute,
		time.Minute, // lands past expiry
	} {
		renewOnce(boot, fail)
		clock.expectWait(t, w)
	}
	renewOnce(boot, fail) // logs the expiry
	clock.expectWait(t, time.Minute)
	next := &Lease{Interface: "eth0", Addr: netip.MustParsePrefix("10.99.0.43/24"), Duration: 10 * time.Minute,
		T1: 5 * time.Minute, T2: 8 * time.Minute, Acquired: clock.Now()}
	renewOnce(boot, renewResult{l: next})
	if got := <-renewed; got != next {
		t.Fatalf("OnLease got %+v", got)
	}
	clock.expectWait(t, 5*time.Minute) // the new lease's T1
	renewOnce(next, fail)
	clock.expectWait(t, 90*time.Second)
	// Cancelled while Renew runs: the loop returns ctx.Err().
	renewCall(next)
	cancel()
	results <- renewResult{err: context.Canceled}
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("RenewLoop returned %v, want context.Canceled", err)
	}
	logMu.Lock()
	all := strings.Join(logs, "\n")
	logMu.Unlock()
	for _, want := range []string{
		"renew 10.99.0.42/24 failed: no response; retrying in 11m15s",
		"lease for 10.99.0.42/24 expired at 2026-01-01T01:00:00Z; keeping the address",
		"server now offers 10.99.0.43/24; keeping boot address 10.99.0.42/24",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("log lacks %q:\n%s", want, all)
		}
	}
	if n := strings.Count(all, "expired at"); n != 1 {
		t.Errorf("expiry logged %d times, want once", n)
	}
}

func TestRenewLoopInfinite(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l := &Lease{Interface: "eth0", Duration: Infinite}
	err := RenewLoop(ctx, l, RenewConfig{Renew: func(context.Context, *Lease) (*Lease, error) {
		t.Error("Renew called for an infinite lease")
		return nil, nil
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("RenewLoop = %v", err)
	}
	if err := RenewLoop(ctx, l, RenewConfig{}); err == nil || !strings.Contains(err.Error(), "no RenewFunc") {
		t.Fatalf("RenewLoop without RenewFunc = %v", err)
	}
}
