package server

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Rate-limited logging. A client that reconnects in a loop, or floods
// the server with connections it never uses, must not grow the log by
// megabytes a second. Every line of a connection's logger is counted
// against its source address's token bucket and against the server's;
// lines over either are dropped and counted, and the next line let
// through from that address says how many were dropped (suppressed=N).
// Errors are never dropped.

const (
	addrLogBurst  = 100 // lines an address may log at once
	addrLogRate   = 20  // lines a second an address may log
	totalLogBurst = 1000
	totalLogRate  = 200
	// maxLogAddrs bounds the addresses tracked; when more are, the
	// table is cleared (their buckets start full again).
	maxLogAddrs = 4096
)

// logLimiter holds the token buckets.
type logLimiter struct {
	now   func() time.Time
	mu    sync.Mutex
	total bucket
	addrs map[string]*addrBucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

type addrBucket struct {
	bucket
	dropped int
}

func newLogLimiter(now func() time.Time) *logLimiter {
	return &logLimiter{now: now, total: bucket{tokens: totalLogBurst, last: now()}, addrs: map[string]*addrBucket{}}
}

// take refills b to now at rate (up to burst) and takes a token.
func (b *bucket) take(now time.Time, rate, burst float64) bool {
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// allow reports whether a line from addr may be logged now, and how
// many of addr's lines were dropped before it.
func (l *logLimiter) allow(addr string) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.addrs[addr]
	if b == nil {
		if len(l.addrs) >= maxLogAddrs {
			clear(l.addrs)
		}
		b = &addrBucket{bucket: bucket{tokens: addrLogBurst, last: now}}
		l.addrs[addr] = b
	}
	if !b.take(now, addrLogRate, addrLogBurst) || !l.total.take(now, totalLogRate, totalLogBurst) {
		b.dropped++
		return false, 0
	}
	n := b.dropped
	b.dropped = 0
	return true, n
}

// logger returns base with its lines rate-limited as addr's.
func (l *logLimiter) logger(base *slog.Logger, addr string) *slog.Logger {
	return slog.New(&limitedHandler{Handler: base.Handler(), lim: l, addr: addr})
}

// limitedHandler drops the lines its address may not log.
type limitedHandler struct {
	slog.Handler
	lim  *logLimiter
	addr string
}

func (h *limitedHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelError {
		ok, dropped := h.lim.allow(h.addr)
		if !ok {
			return nil
		}
		if dropped > 0 {
			r.AddAttrs(slog.Int("suppressed", dropped))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h *limitedHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &limitedHandler{Handler: h.Handler.WithAttrs(as), lim: h.lim, addr: h.addr}
}

func (h *limitedHandler) WithGroup(name string) slog.Handler {
	return &limitedHandler{Handler: h.Handler.WithGroup(name), lim: h.lim, addr: h.addr}
}
