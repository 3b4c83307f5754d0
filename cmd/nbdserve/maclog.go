package main

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// macLog adds mac=MAC to the server's "connected" log lines of the
// machines the PXE service booted (by the connection's client address),
// so that one machine's way from the PXE ROM to its root reads from the
// log by its MAC.
type macLog struct {
	slog.Handler
	macOf  *atomic.Pointer[func(addr string) string] // set once the PXE service runs
	client string                                    // the logger's client= attribute
}

// newMACLog wraps h; macOf is filled in later.
func newMACLog(h slog.Handler, macOf *atomic.Pointer[func(string) string]) slog.Handler {
	return &macLog{Handler: h, macOf: macOf}
}

func (h *macLog) Handle(ctx context.Context, r slog.Record) error {
	if f := h.macOf.Load(); f != nil && r.Message == "connected" && h.client != "" {
		if mac := (*f)(h.client); mac != "" {
			r = r.Clone()
			r.AddAttrs(slog.String("mac", mac))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h *macLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := &macLog{Handler: h.Handler.WithAttrs(attrs), macOf: h.macOf, client: h.client}
	for _, a := range attrs {
		if a.Key == "client" {
			n.client = a.Value.String()
		}
	}
	return n
}

func (h *macLog) WithGroup(name string) slog.Handler {
	return &macLog{Handler: h.Handler.WithGroup(name), macOf: h.macOf, client: h.client}
}
