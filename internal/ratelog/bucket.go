package ratelog

import (
	"sync"
	"time"
)

// Bucket is a token bucket; its zero value is empty. It is not safe for
// concurrent use: its owner locks it.
type Bucket struct {
	tokens float64
	last   time.Time
}

// Full is a bucket holding burst tokens at now.
func Full(burst float64, now time.Time) Bucket { return Bucket{tokens: burst, last: now} }

// Take refills b to now at rate tokens a second (up to burst) and takes
// a token if there is one.
func (b *Bucket) Take(now time.Time, rate, burst float64) bool {
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// ready reports whether Take would succeed, without taking.
func (b *Bucket) ready(now time.Time, rate, burst float64) bool {
	return min(burst, b.tokens+now.Sub(b.last).Seconds()*rate) >= 1
}

// Gate lets perMinute events a minute through, in bursts of as many. It
// is safe for concurrent use.
type Gate struct {
	mu        sync.Mutex
	b         Bucket
	perMinute float64
	now       func() time.Time
}

// NewGate is a full gate reading the time from now.
func NewGate(perMinute int, now func() time.Time) *Gate {
	return &Gate{b: Full(float64(perMinute), now()), perMinute: float64(perMinute), now: now}
}

// Allow takes a token if there is one.
func (g *Gate) Allow() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.b.Take(g.now(), g.perMinute/60, g.perMinute)
}

// Ready reports whether a token is there, without taking it.
func (g *Gate) Ready() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.b.ready(g.now(), g.perMinute/60, g.perMinute)
}
