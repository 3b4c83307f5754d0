package boot

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/nbdboot/nbdboot/bootcfg"
	"github.com/nbdboot/nbdboot/protocol"
)

// Backoff between reconnect rounds: doubling from reconnectMin, capped at
// reconnectMax, forever (the kernel queues I/O up to the dead-connection
// timeout; giving up earlier would only turn a longer outage into errors).
const (
	reconnectMin = 100 * time.Millisecond
	reconnectMax = 2 * time.Second
	// logEvery: after the first failed round, one line every logEvery
	// rounds (about every 20s at the cap), so that a long outage does not
	// flood the console.
	logEvery = 10
)

// Reconnector re-establishes the root device's connections: it dials and
// negotiates again (the boot's own Dial, so the same export name and client
// id), checks that the export is still the one the device was set up with,
// and hands the new sockets to the kernel with RECONFIGURE.
type Reconnector struct {
	// Dial opens one negotiated connection to a server.
	Dial func(ctx context.Context, t bootcfg.Address) (net.Conn, protocol.ExportInfo, error)
	// Reconfigure hands conns to the kernel for device index; they replace
	// dead sockets (the kernel drops any beyond the dead ones).
	Reconfigure func(index uint32, conns []net.Conn, backendID string) error
	Clock       Clock
	Log         *Logger
}

// Recovery describes a completed reconnect.
type Recovery struct {
	Target   bootcfg.Address // the server now serving the device
	Previous bootcfg.Address // the server before
	Attempts int             // rounds until success
	Sockets  int             // sockets handed to the kernel
	Took     time.Duration
}

// Reconnect retries with backoff until a server in candidates(st)
// answers with the same export and the kernel takes its sockets, or ctx
// ends. On success st.Target is the server now in use.
func (r *Reconnector) Reconnect(ctx context.Context, st *State) (Recovery, error) {
	start := r.Clock.Now()
	failover, _ := failoverPolicy(*st)
	wait := reconnectMin
	for attempt := 1; ; attempt++ {
		var errs []string
		for _, t := range candidates(*st, failover) {
			n, err := r.attempt(ctx, *st, t)
			if err == nil {
				rec := Recovery{Target: t, Previous: st.Target, Attempts: attempt, Sockets: n, Took: r.Clock.Now().Sub(start)}
				st.Target = t
				return rec, nil
			}
			errs = append(errs, fmt.Sprintf("%s: %v", t, err))
		}
		if attempt == 1 || attempt%logEvery == 0 {
			r.Log.Printf("supervisor: %s: reconnect attempt %d (%.1fs): %s; retrying",
				st.Device, attempt, r.Clock.Now().Sub(start).Seconds(), strings.Join(errs, "; "))
		} else {
			r.Log.Debugf("supervisor: %s: reconnect attempt %d: %s", st.Device, attempt, strings.Join(errs, "; "))
		}
		select {
		case <-ctx.Done():
		case <-r.Clock.After(wait):
		}
		if ctx.Err() != nil {
			return Recovery{}, fmt.Errorf("reconnect %s: %w", st.Device, ctx.Err())
		}
		wait = min(wait*2, reconnectMax)
	}
}

// attempt dials st.Connections connections to t (fewer when some fail
// after the first), checks each export against st and sends RECONFIGURE.
// It returns how many sockets the kernel was given.
func (r *Reconnector) attempt(ctx context.Context, st State, t bootcfg.Address) (int, error) {
	want := max(st.Connections, 1)
	var conns []net.Conn
	defer func() {
		// The kernel holds its own references after RECONFIGURE.
		for _, c := range conns {
			c.Close()
		}
	}()
	for len(conns) < want {
		c, exp, err := r.Dial(ctx, t)
		if err == nil {
			if err = checkExport(st, exp); err != nil {
				c.Close()
			}
		}
		if err != nil {
			if len(conns) == 0 {
				return 0, err
			}
			r.Log.Printf("supervisor: %s: connection %d of %d to %s: %v; going on with %d",
				st.Device, len(conns)+1, want, t, err, len(conns))
			break
		}
		conns = append(conns, c)
	}
	if err := r.Reconfigure(st.Index, conns, st.BackendID); err != nil {
		return 0, err
	}
	return len(conns), nil
}

// checkExport refuses an export that is not the device's: another size
// (the filesystem would be read past its end or truncated) or writable
// turned read-only (every write would fail and the filesystem abort).
func checkExport(st State, exp protocol.ExportInfo) error {
	if exp.Size != st.Size {
		return fmt.Errorf("%w: %d bytes, %d at boot; refusing it", errExportChanged, exp.Size, st.Size)
	}
	if st.ServerFlags&protocol.FlagReadOnly == 0 && exp.Flags&protocol.FlagReadOnly != 0 && st.Overlay == "" {
		return fmt.Errorf("%w: now read-only, writable at boot; refusing it", errExportChanged)
	}
	return nil
}
