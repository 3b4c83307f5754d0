package main

import (
	"bytes"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
)

// TestMACLog: a connection's "connected" line gets the MAC of the
// machine that booted from its address, once the PXE service runs; other
// lines and unknown addresses are left alone.
func TestMACLog(t *testing.T) {
	var buf bytes.Buffer
	var macOf atomic.Pointer[func(string) string]
	log := slog.New(newMACLog(slog.NewTextHandler(&buf, nil), &macOf))
	conn := log.With("client", "10.0.3.51:35430")
	conn.Info("connected", "export", "lab")
	f := func(addr string) string {
		if strings.HasPrefix(addr, "10.0.3.51:") {
			return "52:54:00:9e:00:01"
		}
		return ""
	}
	macOf.Store(&f)
	conn.Info("connected", "export", "lab")
	conn.Info("disconnected")
	log.With("client", "10.0.3.52:1").Info("connected")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	for i, want := range []bool{false, true, false, false} {
		if got := strings.Contains(lines[i], "mac=52:54:00:9e:00:01"); got != want {
			t.Errorf("line %d %q: mac added %v, want %v", i, lines[i], got, want)
		}
	}
}
