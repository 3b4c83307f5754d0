// Package ratelog bounds what one client can make a server do per unit
// of time: token buckets (Bucket), a rate gate for events such as new
// overlays or new DHCP leases (Gate), and a log handler that drops the
// lines of a client over its rate and counts them (Limiter).
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Rate-limited logging. A client that reconnects in a loop, or floods
// the server with connections or packets it never uses, must not grow the
// log by megabytes a second. Every line of a client's logger is counted
// against its key's token bucket (its source address, or a MAC) and
// against the limiter's; lines over either are dropped and counted, and
// the next line let through for that key says how many were dropped
// (suppressed=N). Errors are never dropped.

const (
	addrLogBurst  = 100 // lines a key may log at once
	addrLogRate   = 20  // lines a second a key may log
	totalLogBurst = 1000
	totalLogRate  = 200
	// maxLogAddrs bounds the addresses tracked; when more are, the
	// table is cleared (their buckets start full again).
	maxLogAddrs = 4096
)

// Limiter holds the token buckets of one server's log.
type Limiter struct {
	now   func() time.Time
	mu    sync.Mutex
	total Bucket
	addrs map[string]*addrBucket
}

type addrBucket struct {
	Bucket
	dropped int
}

// New is a Limiter reading the time from now.
func New(now func() time.Time) *Limiter {
	return &Limiter{now: now, total: Full(totalLogBurst, now()), addrs: map[string]*addrBucket{}}
}

// allow reports whether a line from addr may be logged now, and how
// many of addr's lines were dropped before it.
func (l *Limiter) allow(addr string) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.addrs[addr]
	if b == nil {
		if len(l.addrs) >= maxLogAddrs {
			clear(l.addrs)
		}
		b = &addrBucket{Bucket: Full(addrLogBurst, now)}
		l.addrs[addr] = b
	}
	if !b.Take(now, addrLogRate, addrLogBurst) || !l.total.Take(now, totalLogRate, totalLogBurst) {
		b.dropped++
		return false, 0
	}
	n := b.dropped
	b.dropped = 0
	return true, n
}

// Logger returns base with its lines rate-limited as key's (a client's
// source address, or another name for one client or a group of them).
func (l *Limiter) Logger(base *slog.Logger, addr string) *slog.Logger {
	return slog.New(&limitedHandler{Handler: base.Handler(), lim: l, addr: addr})
}

// limitedHandler drops the lines its address may not log.
type limitedHandler struct {
	slog.Handler
	lim  *Limiter
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
