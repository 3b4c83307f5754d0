package netcfg

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

type renewResult struct {
	l   *Lease
	err error
}

// TestRenewLoop runs RenewLoop in a synctest bubble: its clock starts at
// 2000-01-01 00:00 UTC and moves only while every goroutine waits, so the
// time between two Renew calls is exactly the loop's wait.
func TestRenewLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now().UTC()
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
		// renewCall waits for the loop's next Renew call, which must come
		// wait after the last one returned (after the start for the first)
		// and renew want.
		last := t0
		renewCall := func(wait time.Duration, want *Lease) {
			t.Helper()
			cur := <-calls
			if got := time.Since(last); got != wait {
				t.Fatalf("RenewLoop waited %s, want %s", got, wait)
			}
			if cur != want {
				t.Fatalf("Renew got lease %+v, want %+v", cur, want)
			}
		}
		renewOnce := func(wait time.Duration, want *Lease, r renewResult) {
			t.Helper()
			renewCall(wait, want)
			results <- r
			last = time.Now()
		}
		fail := renewResult{err: errors.New("no response")}

		for _, w := range []time.Duration{
			30 * time.Minute,                // T1
			11*time.Minute + 15*time.Second, // half of the 22.5 min to T2
			5*time.Minute + 37*time.Second + 500*time.Millisecond,
			2*time.Minute + 48*time.Second + 750*time.Millisecond, // 5m37.5s left to T2: half
			84375 * time.Millisecond,                              // 2m48.75s left to T2: half
			time.Minute,                                           // half of 1m24.375s is below MinRetry
			time.Minute,                                           // 24.375s before T2
			207187500 * time.Microsecond,                          // past T2: half of the 6m54.375s left to expiry
			103593750 * time.Microsecond,
			time.Minute,
			time.Minute, // lands past expiry: this attempt logs the expiry
		} {
			renewOnce(w, boot, fail)
		}
		next := &Lease{Interface: "eth0", Addr: netip.MustParsePrefix("10.99.0.43/24"), Duration: 10 * time.Minute,
			T1: 5 * time.Minute, T2: 8 * time.Minute}
		renewOnce(time.Minute, boot, renewResult{l: next})
		if got := <-renewed; got != next {
			t.Fatalf("OnLease got %+v", got)
		}
		renewOnce(5*time.Minute, next, fail) // the new lease's T1
		// Cancelled while Renew runs: the loop returns ctx.Err().
		renewCall(90*time.Second, next)
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
			"lease for 10.99.0.42/24 expired at 2000-01-01T01:00:00Z; keeping the address",
			"server now offers 10.99.0.43/24; keeping boot address 10.99.0.42/24",
		} {
			if !strings.Contains(all, want) {
				t.Errorf("log lacks %q:\n%s", want, all)
			}
		}
		if n := strings.Count(all, "expired at"); n != 1 {
			t.Errorf("expiry logged %d times, want once", n)
		}
	})
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
