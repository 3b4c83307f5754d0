package boot

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/nbdboot/nbdboot/nbdnl"
	"github.com/nbdboot/nbdboot/netcfg"
)

// KeeperMode is the argument that selects the ioctl keeper mode:
// "@nbdboot ioctl-attach [flags] /dev/nbdN", the sockets as fds 3 on.
const KeeperMode = "ioctl-attach"

// keeperFirstFD is the first inherited socket descriptor (exec.Cmd's
// ExtraFiles start after stdin, stdout and stderr).
const keeperFirstFD = 3

// maxKeeperSockets caps the sockets a keeper takes (nbdboot.connections
// allows 16).
const maxKeeperSockets = 16

// KeeperSpec is the device geometry the keeper sets with ioctls.
type KeeperSpec struct {
	Index       uint32
	Size        uint64
	BlockSize   uint64
	ServerFlags uint64
	Timeout     time.Duration
	Sockets     int // inherited as fds 3 … 3+Sockets-1
}

// Args is the keeper's command line after argv[0].
func (k KeeperSpec) Args() []string {
	return []string{KeeperMode,
		fmt.Sprintf("-size=%d", k.Size),
		fmt.Sprintf("-bs=%d", k.BlockSize),
		fmt.Sprintf("-flags=%d", k.ServerFlags),
		fmt.Sprintf("-timeout=%s", k.Timeout),
		fmt.Sprintf("-sockets=%d", k.Sockets),
		nbdnl.DevicePath(k.Index),
	}
}

// ParseKeeperArgs parses the keeper's arguments after the mode word.
func ParseKeeperArgs(args []string) (KeeperSpec, error) {
	var k KeeperSpec
	fs := flag.NewFlagSet(KeeperMode, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Uint64Var(&k.Size, "size", 0, "device size in bytes")
	fs.Uint64Var(&k.BlockSize, "bs", 0, "logical block size")
	fs.Uint64Var(&k.ServerFlags, "flags", 0, "transmission flags")
	fs.DurationVar(&k.Timeout, "timeout", 0, "request timeout")
	fs.IntVar(&k.Sockets, "sockets", 0, "inherited sockets")
	if err := fs.Parse(args); err != nil {
		return k, fmt.Errorf("%s: %w", KeeperMode, err)
	}
	if fs.NArg() != 1 {
		return k, fmt.Errorf("%s: want one device /dev/nbdN, got %d arguments", KeeperMode, fs.NArg())
	}
	idx, err := nbdnl.DeviceIndex(fs.Arg(0))
	if err != nil {
		return k, fmt.Errorf("%s: device %q: want /dev/nbdN", KeeperMode, fs.Arg(0))
	}
	k.Index = idx
	if k.Size == 0 {
		return k, fmt.Errorf("%s: -size: want a size above 0", KeeperMode)
	}
	if k.Sockets < 1 || k.Sockets > maxKeeperSockets {
		return k, fmt.Errorf("%s: -sockets=%d: want 1 to %d", KeeperMode, k.Sockets, maxKeeperSockets)
	}
	return k, nil
}

// KeeperStarter starts the process that holds an ioctl-attached device.
// exited receives the process's end (its Wait error, nil for status 0).
type KeeperStarter interface {
	Start(spec KeeperSpec, sockets []*os.File) (exited <-chan error, err error)
}

// ExecKeeper starts the keeper by re-executing the running binary as
// "@nbdboot ioctl-attach ...", in its own session, in /, like the
// supervisor: systemd spares it for its argv[0], and it holds nothing of
// the initramfs but its own text.
type ExecKeeper struct {
	Exe     string   // "" means /proc/self/exe
	Console *os.File // nil means os.Stdout
}

// Start starts the keeper with the sockets as fds 3 on.
func (e ExecKeeper) Start(spec KeeperSpec, sockets []*os.File) (<-chan error, error) {
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
		Args:        append([]string{SupervisorArgv0}, spec.Args()...),
		Dir:         "/",
		Env:         append([]string(nil), initEnv...),
		Stdout:      console,
		Stderr:      console,
		ExtraFiles:  sockets,
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
	spec := KeeperSpec{Index: idx, Size: req.Size, BlockSize: req.BlockSize,
		ServerFlags: req.ServerFlags, Timeout: req.Timeout, Sockets: len(socks)}
	exited, err := keeper.Start(spec, socks)
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
	spec, err := ParseKeeperArgs(args)
	if err != nil {
		return err
	}
	log := NewLogger(console, netcfg.SystemClock())
	if err := SetProcessName(ProcessName); err != nil {
		log.Printf("ioctl keeper: %v", err)
	}
	socks := make([]*os.File, spec.Sockets)
	for i := range socks {
		socks[i] = os.NewFile(uintptr(keeperFirstFD+i), fmt.Sprintf("socket %d", i))
	}
	defer func() {
		for _, s := range socks {
			s.Close()
		}
	}()
	if _, err := lockMemory(); err != nil {
		log.Printf("ioctl keeper: lock memory: %v (going on)", err)
	}
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("-1000"), 0); err != nil {
		log.Printf("ioctl keeper: oom_score_adj: %v", err)
	}
	signal.Ignore(syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT, syscall.SIGPIPE)
	idx := spec.Index
	sess, err := nbdnl.DefaultSys().AttachIoctl(ctx, nbdnl.ConnectConfig{
		Index: &idx, Size: spec.Size, BlockSize: spec.BlockSize,
		ServerFlags: spec.ServerFlags, Timeout: spec.Timeout, Sockets: socks,
	})
	if err != nil {
		return err
	}
	// The kernel holds the sockets now.
	for _, s := range socks {
		s.Close()
	}
	socks = nil
	log.Printf("ioctl keeper: pid %d holds %s (%d socket(s)); it ends with the device", os.Getpid(), nbdnl.DevicePath(idx), spec.Sockets)
	<-sess.Done()
	if err := sess.Err(); err != nil {
		return fmt.Errorf("ioctl keeper: %s: %w", nbdnl.DevicePath(idx), err)
	}
	log.Printf("ioctl keeper: %s disconnected", nbdnl.DevicePath(idx))
	return nil
}
