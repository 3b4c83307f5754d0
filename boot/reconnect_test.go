package boot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/bootcfg"
	"github.com/nbdboot/nbdboot/protocol"
)

// fakeServers answers Reconnector.Dial per target address: an error for
// the first fails[addr] dials, then exports[addr].
type fakeServers struct {
	mu      sync.Mutex
	exports map[string]protocol.ExportInfo
	fails   map[string]int
	dialed  []string // address and export name of every dial
	cancel  context.CancelFunc
	maxDial int // cancel after this many dials (0: never)
}

func (f *fakeServers) dial(ctx context.Context, t bootcfg.Address) (net.Conn, protocol.ExportInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dialed = append(f.dialed, t.Addr()+"/"+t.Export)
	if f.maxDial > 0 && len(f.dialed) >= f.maxDial {
		f.cancel()
	}
	if f.fails[t.Addr()] > 0 {
		f.fails[t.Addr()]--
		return nil, protocol.ExportInfo{}, fmt.Errorf("dial %s: connection refused", t.Addr())
	}
	exp, ok := f.exports[t.Addr()]
	if !ok {
		return nil, protocol.ExportInfo{}, fmt.Errorf("dial %s: no route to host", t.Addr())
	}
	c, peer := net.Pipe()
	peer.Close()
	return c, exp, nil
}

type reconfigured struct {
	index   uint32
	sockets int
	backend string
}

type fakeReconfigure struct {
	mu    sync.Mutex
	calls []reconfigured
}

func (f *fakeReconfigure) reconfigure(index uint32, conns []net.Conn, backend string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, reconfigured{index, len(conns), backend})
	return nil
}

var (
	srvA = bootcfg.Address{Server: bootcfg.Server{Host: "10.0.0.1", Port: 10809}, Export: "root"}
	srvB = bootcfg.Address{Server: bootcfg.Server{Host: "10.0.0.2", Port: 10809}, Export: "root"}
)

func rootState(flags uint16, overlay string, conns int) State {
	return State{
		Version: StateVersion, Index: 0, Device: "/dev/nbd0",
		Servers: []bootcfg.Address{srvA, srvB}, Target: srvA, BackendID: srvA.String(),
		Connections: conns, Size: 64 << 20, ServerFlags: flags, Overlay: overlay,
	}
}

func TestReconnect(t *testing.T) {
	ok := protocol.ExportInfo{Size: 64 << 20, Flags: 1}
	ro := protocol.ExportInfo{Size: 64 << 20, Flags: 1 | protocol.FlagReadOnly}
	for _, c := range []struct {
		name     string
		st       State
		exports  map[string]protocol.ExportInfo
		fails    map[string]int
		maxDial  int
		want     bootcfg.Address // "" host: cancelled
		attempts int
		sockets  int
		dialed   []string
		errLog   string
	}{{
		name:    "same server after two failures",
		st:      rootState(1, "", 1),
		exports: map[string]protocol.ExportInfo{srvA.Addr(): ok, srvB.Addr(): ok},
		fails:   map[string]int{srvA.Addr(): 2},
		want:    srvA, attempts: 3, sockets: 1,
		// writable: srvB is never tried
		dialed: []string{"10.0.0.1:10809/root", "10.0.0.1:10809/root", "10.0.0.1:10809/root"},
		errLog: "reconnect attempt 1 (0.0s): nbd://10.0.0.1:10809/root: dial 10.0.0.1:10809: connection refused; retrying",
	}, {
		name:    "failover of a read-only export",
		st:      rootState(1|protocol.FlagReadOnly, "", 1),
		exports: map[string]protocol.ExportInfo{srvB.Addr(): ro},
		want:    srvB, attempts: 1, sockets: 1,
		dialed: []string{"10.0.0.1:10809/root", "10.0.0.2:10809/root"},
	}, {
		name:    "failover under a client overlay",
		st:      rootState(1, "tmpfs", 1),
		exports: map[string]protocol.ExportInfo{srvB.Addr(): ok},
		want:    srvB, attempts: 1, sockets: 1,
		dialed: []string{"10.0.0.1:10809/root", "10.0.0.2:10809/root"},
	}, {
		name:    "no failover of a writable export",
		st:      rootState(1, "", 1),
		exports: map[string]protocol.ExportInfo{srvB.Addr(): ok},
		maxDial: 3,
		dialed:  []string{"10.0.0.1:10809/root", "10.0.0.1:10809/root", "10.0.0.1:10809/root"},
	}, {
		name:    "size changed",
		st:      rootState(1, "", 1),
		exports: map[string]protocol.ExportInfo{srvA.Addr(): {Size: 32 << 20, Flags: 1}},
		maxDial: 2,
		dialed:  []string{"10.0.0.1:10809/root", "10.0.0.1:10809/root"},
		errLog:  "export changed: 33554432 bytes, 67108864 at boot; refusing it",
	}, {
		name:    "writable export turned read-only",
		st:      rootState(1, "", 1),
		exports: map[string]protocol.ExportInfo{srvA.Addr(): ro},
		maxDial: 1,
		dialed:  []string{"10.0.0.1:10809/root"},
		errLog:  "export changed: now read-only, writable at boot",
	}, {
		name:    "two connections",
		st:      rootState(1|protocol.FlagCanMultiConn, "", 2),
		exports: map[string]protocol.ExportInfo{srvA.Addr(): {Size: 64 << 20, Flags: 1 | protocol.FlagCanMultiConn}},
		want:    srvA, attempts: 1, sockets: 2,
		dialed: []string{"10.0.0.1:10809/root", "10.0.0.1:10809/root"},
	}} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var log strings.Builder
			srv := &fakeServers{exports: c.exports, fails: c.fails, maxDial: c.maxDial, cancel: cancel}
			if srv.fails == nil {
				srv.fails = map[string]int{}
			}
			k := &fakeReconfigure{}
			clock := newFakeClock()
			r := &Reconnector{Dial: srv.dial, Reconfigure: k.reconfigure, Clock: clock, Log: NewLogger(&log, clock)}
			st := c.st
			rec, err := r.Reconnect(ctx, &st)
			if c.want.Host == "" {
				if !errors.Is(err, context.Canceled) || len(k.calls) != 0 {
					t.Errorf("Reconnect = %+v, %v; reconfigured %v; want cancelled without RECONFIGURE", rec, err, k.calls)
				}
			} else {
				if err != nil || rec.Target != c.want || rec.Attempts != c.attempts || rec.Sockets != c.sockets || st.Target != c.want {
					t.Errorf("Reconnect = %+v, %v (state target %v); want %v after %d attempts with %d sockets",
						rec, err, st.Target, c.want, c.attempts, c.sockets)
				}
				want := []reconfigured{{0, c.sockets, srvA.String()}} // the boot's backend id, even after a failover
				if !reflect.DeepEqual(k.calls, want) {
					t.Errorf("RECONFIGURE %v, want %v", k.calls, want)
				}
			}
			if !reflect.DeepEqual(srv.dialed, c.dialed) {
				t.Errorf("dialed %q, want %q", srv.dialed, c.dialed)
			}
			if c.errLog != "" && !strings.Contains(log.String(), c.errLog) {
				t.Errorf("log lacks %q:\n%s", c.errLog, log.String())
			}
		})
	}
}

// The backoff doubles from reconnectMin to reconnectMax.
func TestReconnectBackoff(t *testing.T) {
	srv := &fakeServers{exports: map[string]protocol.ExportInfo{srvA.Addr(): {Size: 64 << 20}}, fails: map[string]int{srvA.Addr(): 7}}
	clock := newFakeClock()
	start := clock.Now()
	r := &Reconnector{Dial: srv.dial, Reconfigure: (&fakeReconfigure{}).reconfigure, Clock: clock, Log: NewLogger(io.Discard, clock)}
	st := rootState(0, "", 1)
	rec, err := r.Reconnect(context.Background(), &st)
	if err != nil {
		t.Fatal(err)
	}
	// 0.1 + 0.2 + 0.4 + 0.8 + 1.6 + 2 + 2
	if want := 7100 * time.Millisecond; rec.Took != want || clock.Now().Sub(start) != want {
		t.Errorf("took %v, want %v", rec.Took, want)
	}
}

func TestCandidates(t *testing.T) {
	st := rootState(0, "", 1)
	st.Target.Export = "root/52:54:00:12:34:56" // the boot negotiated NAME/CLIENT-ID
	if got, want := candidates(st, false), []bootcfg.Address{st.Target}; !reflect.DeepEqual(got, want) {
		t.Errorf("no failover: %v, want %v", got, want)
	}
	want := []bootcfg.Address{st.Target, {Server: bootcfg.Server{Host: "10.0.0.2", Port: 10809}, Export: "root/52:54:00:12:34:56"}}
	if got := candidates(st, true); !reflect.DeepEqual(got, want) {
		t.Errorf("failover: %v, want %v", got, want)
	}
	st.Target = srvB // running on the second: it first, then the first
	if got, want := candidates(st, true), []bootcfg.Address{srvB, srvA}; !reflect.DeepEqual(got, want) {
		t.Errorf("failover from B: %v, want %v", got, want)
	}
}

func TestFailoverPolicy(t *testing.T) {
	for _, c := range []struct {
		st   State
		want bool
		why  string
	}{
		{rootState(1, "", 1), false, "writable export without a client-side overlay"},
		{rootState(1|protocol.FlagReadOnly, "", 1), true, "read-only export"},
		{rootState(1, "tmpfs", 1), true, "client-side tmpfs overlay"},
		{State{Servers: []bootcfg.Address{srvA}, ServerFlags: protocol.FlagReadOnly}, false, "one server"},
	} {
		got, why := failoverPolicy(c.st)
		if got != c.want || !strings.Contains(why, c.why) {
			t.Errorf("failoverPolicy(flags %#x, overlay %q, %d servers) = %v, %q; want %v, %q",
				c.st.ServerFlags, c.st.Overlay, len(c.st.Servers), got, why, c.want, c.why)
		}
	}
}
