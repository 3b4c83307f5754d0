package boot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/nbdboot/nbdboot/nbdnl"
)

// KeeperStarter starts the process that holds an ioctl-attached device
// configured as cfg (cfg.Index set; cfg.Sockets go to the process).
// exited receives the process's end (its Wait error, nil for status 0).
type KeeperStarter interface {
	Start(cfg nbdnl.ConnectConfig) (exited <-chan error, err error)
}

// ExecKeeper starts the keeper by re-executing the running binary as
// "@nbdboot ioctl-attach ...", in its own session, in /, like the
// supervisor: systemd spares it for its argv[0], and it holds nothing of
// the initramfs but its own text.
type ExecKeeper struct {
	Exe     string   // "" means /proc/self/exe
	Console *os.File // nil means os.Stdout
}

// Start starts the keeper with cfg's sockets as fds 3 on.
func (e ExecKeeper) Start(cfg nbdnl.ConnectConfig) (<-chan error, error) {
	exe := e.Exe
	if exe == "" {
		exe = "/proc/self/exe"
	}
	console := e.Console
	if console == nil {
		console = os.Stdout
	}
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        append([]string{SupervisorArgv0}, KeeperArgs(cfg)...),
		Dir:         "/",
		Env:         append([]string(nil), initEnv...),
		Stdout:      console,
		Stderr:      console,
		ExtraFiles:  cfg.Sockets,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start ioctl keeper %s: %w", exe, err)
	}
	exited := make(chan error, 1)
	// The waiting goroutine ends with PID 1's exec of init, which then
	// inherits (and reaps) the keeper.
	go func() { exited <- cmd.Wait() }()
	return exited, nil
}

// attachIoctl has a keeper process set the device up with ioctls and
// waits until the kernel runs it, or the keeper dies first.
func (d NetlinkDevice) attachIoctl(ctx context.Context, req AttachRequest, socks []*os.File, why string) (Attached, error) {
	var idx uint32
	if req.Index != nil {
		idx = *req.Index
	} else {
		var err error
		if idx, err = d.Sys.FreeDevice(); err != nil {
			return Attached{}, fmt.Errorf("ioctl attach (%s): %w", why, err)
		}
	}
	dev := nbdnl.DevicePath(idx)
	keeper := d.Keeper
	if keeper == nil {
		keeper = ExecKeeper{}
	}
	cfg := req.ConnectConfig
	cfg.Index, cfg.Sockets = &idx, socks
	exited, err := keeper.Start(cfg)
	if err != nil {
		return Attached{}, fmt.Errorf("ioctl attach %s (%s): %w", dev, why, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	connected := make(chan error, 1)
	go func() { connected <- d.Sys.WaitConnected(wctx, idx, 10*time.Second) }()
	select {
	case err := <-connected:
		if err != nil {
			return Attached{}, fmt.Errorf("ioctl attach %s (%s): %w", dev, why, err)
		}
	case err := <-exited:
		if err == nil {
			err = errors.New("exit status 0")
		}
		return Attached{}, fmt.Errorf("ioctl attach %s (%s): the keeper process ended before the device started: %v", dev, why, err)
	}
	return Attached{Index: idx, Ioctl: true, Why: why}, nil
}

// RunKeeper is the keeper mode: it sets the device up with the ioctls on
// the inherited sockets and stays in NBD_DO_IT for the device's whole
// life, across switch_root. Like the supervisor it locks itself in memory,
// opts out of the OOM killer and ignores the signals a shutdown sends. It
// returns when the device is disconnected.
func RunKeeper(ctx context.Context, args []string, console io.Writer) error {
	cfg, n, err := ParseKeeperArgs(args)
	if err != nil {
		return err
	}
	log := NewLogger(console, SystemClock())
	if err := SetProcessName(ProcessName); err != nil {
		log.Printf("ioctl keeper: %v", err)
	}
	socks := make([]*os.File, n)
	for i := range socks {
		socks[i] = os.NewFile(uintptr(keeperFirstFD+i), fmt.Sprintf("socket %d", i))
	}
	defer func() {
		for _, s := range socks {
			s.Close()
		}
	}()
	cfg.Sockets = socks
	if _, err := lockMemory(); err != nil {
		log.Printf("ioctl keeper: lock memory: %v (going on)", err)
	}
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("-1000"), 0); err != nil {
		log.Printf("ioctl keeper: oom_score_adj: %v", err)
	}
	signal.Ignore(syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT, syscall.SIGPIPE)
	idx := *cfg.Index
	sess, err := nbdnl.DefaultSys().AttachIoctl(ctx, cfg)
	if err != nil {
		return err
	}
	// The kernel holds the sockets now.
	for _, s := range socks {
		s.Close()
	}
	socks = nil
	log.Printf("ioctl keeper: pid %d holds %s (%d socket(s)); it ends with the device", os.Getpid(), nbdnl.DevicePath(idx), n)
	<-sess.Done()
	if err := sess.Err(); err != nil {
		return fmt.Errorf("ioctl keeper: %s: %w", nbdnl.DevicePath(idx), err)
	}
	log.Printf("ioctl keeper: %s disconnected", nbdnl.DevicePath(idx))
	return nil
}
