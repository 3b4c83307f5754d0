package boot

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// SupervisorArgv0 marks the resident supervisor as a root storage daemon:
// systemd spares processes whose argv[0] starts with '@' at switch-root
// and shutdown.
const SupervisorArgv0 = "@nbdboot"

// SupervisorMode is the argument that selects the supervisor mode.
const SupervisorMode = "supervise"

// ExecSupervisor starts the supervisor by re-executing the running binary
// (/proc/self/exe) as "@nbdboot supervise STATE", in its own session,
// with / as its directory so it holds nothing of the initramfs but its
// own text, which stays in memory once the initramfs is deleted.
type ExecSupervisor struct {
	Exe     string // "" means /proc/self/exe
	Console *os.File
	Log     *Logger
}

// Start starts the supervisor and returns once it executes.
func (s ExecSupervisor) Start(statePath string) error {
	exe := s.Exe
	if exe == "" {
		exe = "/proc/self/exe"
	}
	cmd := &exec.Cmd{
		Path: exe,
		Args: []string{SupervisorArgv0, SupervisorMode, statePath},
		Dir:  "/",
		// Libraries linked into the binary may create a cache directory
		// under $HOME at start; the new root may be read-only.
		Env:         append(append([]string(nil), initEnv...), "XDG_CACHE_HOME="+RunDir+"/cache"),
		Stdout:      s.Console,
		Stderr:      s.Console,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start supervisor %s: %w", exe, err)
	}
	if s.Log != nil {
		s.Log.Printf("supervisor: started as pid %d", cmd.Process.Pid)
	}
	// Init will reap it; nothing waits here.
	return cmd.Process.Release()
}

// LinkDead is a LINK_DEAD notification for a device index.
type LinkDead struct {
	Index uint32
}

// Supervisor is the resident process after switch_root: it reconnects
// the root device when the link or the server drops. It reacts to the
// kernel's LINK_DEAD notifications and, since those can be lost, to a
// watchdog read of the device that stays unanswered for too long.
type Supervisor struct {
	State State
	Log   *Logger
	Clock Clock
	// Watch subscribes to the nbd driver's LINK_DEAD notifications; nil
	// means no subscription.
	Watch func(ctx context.Context) (<-chan LinkDead, error)
	// Reconnect re-dials, negotiates and sends RECONFIGURE, retrying until
	// it succeeds or ctx ends, and updates st.Target; nil means the
	// supervisor only reports the dead link.
	Reconnect func(ctx context.Context, st *State) (Recovery, error)
	// Probe reads one block of the device; nil disables the watchdog and
	// the "I/O resumed" measurement.
	Probe func(ctx context.Context) error
	// ProbeEvery is the watchdog's period; Stuck is how long a probe may
	// stay unanswered before the supervisor reconnects without a
	// LINK_DEAD. Zero values take defaults (stuckAfter).
	ProbeEvery time.Duration
	Stuck      time.Duration
}

// Watchdog defaults: the kernel marks a socket dead after the request
// timeout and should notify at once; a read stuck for the timeout plus
// stuckSlack means the notification was lost.
const (
	defaultProbeEvery = 15 * time.Second
	stuckSlack        = 15 * time.Second
	resubscribeDelay  = time.Second
)

// stuckAfter is how long a watchdog read may take before the supervisor
// reconnects on its own.
func (s *Supervisor) stuckAfter() time.Duration {
	if s.Stuck > 0 {
		return s.Stuck
	}
	return s.State.Timeout + stuckSlack
}

// stuckRead reports a watchdog read unanswered since Start.
type stuckRead struct {
	Start time.Time
}

// Run stays resident until ctx ends.
func (s *Supervisor) Run(ctx context.Context) error {
	policy, why := failoverPolicy(s.State)
	fo := "no failover (" + why + ")"
	if policy {
		fo = "failover allowed (" + why + ")"
	}
	s.Log.Printf("supervisor: resident for %s (%s, %d connection(s), timeout %s, dead-conn timeout %s); %s",
		s.State.Device, s.State.Target, s.State.Connections, s.State.Timeout, s.State.DeadConn, fo)
	if s.State.Ioctl {
		// RECONFIGURE needs a netlink-configured device.
		s.Log.Printf("supervisor: %s is attached with ioctls and held by the keeper process: reconnect unavailable", s.State.Device)
		<-ctx.Done()
		return nil
	}
	events := s.subscribe(ctx)
	var resubscribe <-chan time.Time
	stuck := s.watchdog(ctx)
	var recovered time.Time // end of the last recovery
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				s.Log.Printf("supervisor: LINK_DEAD subscription closed; subscribing again")
				events, resubscribe = nil, s.Clock.After(resubscribeDelay)
				continue
			}
			if ev.Index == s.State.Index {
				recovered = s.recover(ctx, "LINK_DEAD")
				events = drain(events)
			}
		case <-resubscribe:
			resubscribe = nil
			events = s.subscribe(ctx)
		case st := <-stuck:
			if st.Start.Before(recovered) {
				continue // the read was stuck behind the outage just repaired
			}
			recovered = s.recover(ctx, fmt.Sprintf("a read unanswered for %.0fs without LINK_DEAD", s.stuckAfter().Seconds()))
			events = drain(events)
		}
	}
}

// subscribe starts the LINK_DEAD subscription; nil on failure (logged).
func (s *Supervisor) subscribe(ctx context.Context) <-chan LinkDead {
	if s.Watch == nil {
		return nil
	}
	ch, err := s.Watch(ctx)
	if err != nil {
		s.Log.Printf("supervisor: LINK_DEAD subscription: %v; not watching", err)
		return nil
	}
	return ch
}

// drain drops the notifications queued while the device was being
// repaired: several sockets dying give several LINK_DEADs, and one
// reconnect fills every dead slot. (A socket dying again right after the
// repair would be missed here; the watchdog read catches that.)
func drain(events <-chan LinkDead) <-chan LinkDead {
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return events // Run sees the close next
			}
		default:
			return events
		}
	}
}

// recover reconnects the device and logs the loss, the recovery and when
// I/O answers again, with timings. It returns when the reconnect is done.
func (s *Supervisor) recover(ctx context.Context, cause string) time.Time {
	lost := s.Clock.Now()
	s.Log.Printf("supervisor: %s: connection to %s lost (%s); I/O waits up to %s for a new one; reconnecting",
		s.State.Device, s.State.Target, cause, s.State.DeadConn)
	if s.Reconnect == nil {
		s.Log.Printf("supervisor: reconnect not available; I/O waits up to the dead-conn timeout (%s)", s.State.DeadConn)
		return s.Clock.Now()
	}
	rec, err := s.Reconnect(ctx, &s.State)
	if err != nil {
		s.Log.Printf("supervisor: %s: %v", s.State.Device, err)
		return s.Clock.Now()
	}
	s.Log.Printf("supervisor: %s: reconnected to %s %.3fs after the loss (%d attempt(s), %d socket(s))",
		s.State.Device, rec.Target, rec.Took.Seconds(), rec.Attempts, rec.Sockets)
	if rec.Target.Addr() != rec.Previous.Addr() {
		s.Log.Printf("supervisor: %s: failover: now served by %s instead of %s", s.State.Device, rec.Target, rec.Previous)
	}
	if s.Probe != nil {
		go s.resumed(ctx, lost)
	}
	return s.Clock.Now()
}

// resumed logs when a read of the device answers after a reconnect.
func (s *Supervisor) resumed(ctx context.Context, lost time.Time) {
	start := s.Clock.Now()
	if err := s.Probe(ctx); err != nil {
		s.Log.Printf("supervisor: %s: read after the reconnect: %v", s.State.Device, err)
		return
	}
	now := s.Clock.Now()
	s.Log.Printf("supervisor: %s: I/O resumed %.3fs after the loss (a new read answered in %.3fs; requests in flight at the loss are resent when they time out, within %s)",
		s.State.Device, now.Sub(lost).Seconds(), now.Sub(start).Seconds(), s.State.Timeout)
}

// watchdog reads the device every ProbeEvery and reports a read that
// stays unanswered for stuckAfter. One read at a time: a stuck read is
// reported once and waited for before the next.
func (s *Supervisor) watchdog(ctx context.Context) <-chan stuckRead {
	// Without a request timeout (nbdboot.timeout=0) the kernel never
	// declares a socket dead, and RECONFIGURE fills dead slots only: a
	// reconnect could not help a stuck read.
	if s.Probe == nil || (s.State.Timeout == 0 && s.Stuck == 0) {
		return nil
	}
	every := s.ProbeEvery
	if every <= 0 {
		every = defaultProbeEvery
	}
	out := make(chan stuckRead)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.Clock.After(every):
			}
			start := s.Clock.Now()
			done := make(chan error, 1)
			go func() { done <- s.Probe(ctx) }()
			select {
			case <-done:
				continue
			case <-ctx.Done():
				return
			case <-s.Clock.After(s.stuckAfter()):
			}
			select {
			case <-done: // answered just in time
				continue
			default:
			}
			select {
			case out <- stuckRead{Start: start}:
			case <-ctx.Done():
				return
			}
			select {
			case <-done:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
