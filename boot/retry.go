package boot

import (
	"context"
	"time"
)

// Backoff between attempts: doubling from backoffMin, capped at backoffMax.
const (
	backoffMin = 100 * time.Millisecond
	backoffMax = 2 * time.Second
)

// retrier repeats an attempt until it succeeds or the deadline (measured
// on the injected clock) would pass before the next attempt.
type retrier struct {
	clock    Clock
	deadline time.Time
	wait     time.Duration
}

func newRetrier(c Clock, budget time.Duration) *retrier {
	return &retrier{clock: c, deadline: c.Now().Add(budget), wait: backoffMin}
}

// next waits for the next attempt; false when the deadline is reached or
// ctx is done.
func (r *retrier) next(ctx context.Context) bool {
	now := r.clock.Now()
	if !now.Before(r.deadline) {
		return false
	}
	w := r.wait
	if rest := r.deadline.Sub(now); w > rest {
		w = rest
	}
	r.wait *= 2
	if r.wait > backoffMax {
		r.wait = backoffMax
	}
	select {
	case <-ctx.Done():
		return false
	case <-r.clock.After(w):
		return true
	}
}

// left is the time until the deadline, at least a second so that a last
// attempt is not cut short.
func (r *retrier) left() time.Duration {
	if d := r.deadline.Sub(r.clock.Now()); d > time.Second {
		return d
	}
	return time.Second
}
