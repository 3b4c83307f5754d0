package boot

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
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

// Supervisor is the resident process after switch_root. It watches the
// root device and (in a later step) reconnects it when the link or the
// server drops.
type Supervisor struct {
	State State
	Log   *Logger
	// Watch subscribes to the nbd driver's LINK_DEAD notifications; nil
	// means no subscription.
	Watch func(ctx context.Context) (<-chan LinkDead, error)
	// Reconnect re-dials, negotiates and sends RECONFIGURE; nil means the
	// supervisor only reports the dead link.
	Reconnect func(ctx context.Context, st State) error
}

// Run stays resident until ctx ends.
func (s *Supervisor) Run(ctx context.Context) error {
	s.Log.Printf("supervisor: resident for %s (%s, %d connection(s))", s.State.Device, s.State.BackendID, s.State.Connections)
	var events <-chan LinkDead
	if s.Watch != nil {
		ch, err := s.Watch(ctx)
		if err != nil {
			s.Log.Printf("supervisor: LINK_DEAD subscription: %v; not watching", err)
		} else {
			events = ch
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				s.Log.Printf("supervisor: LINK_DEAD subscription closed")
				events = nil
				continue
			}
			s.linkDead(ctx, ev)
		}
	}
}

func (s *Supervisor) linkDead(ctx context.Context, ev LinkDead) {
	if ev.Index != s.State.Index {
		return
	}
	s.Log.Printf("supervisor: link dead on %s", s.State.Device)
	if s.Reconnect == nil {
		s.Log.Printf("supervisor: reconnect not available; I/O waits up to the dead-conn timeout (%s)", s.State.DeadConn)
		return
	}
	if err := s.Reconnect(ctx, s.State); err != nil {
		s.Log.Printf("supervisor: reconnect %s: %v", s.State.Device, err)
		return
	}
	s.Log.Printf("supervisor: %s reconnected to %s", s.State.Device, s.State.Target)
}
