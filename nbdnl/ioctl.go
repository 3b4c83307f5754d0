package nbdnl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"
)

// IoctlSession is a device attached through the ioctl interface. Unlike a
// netlink connection it lives only as long as this process: a goroutine
// sits in NBD_DO_IT, which returns when the device is disconnected or its
// sockets die (on 6.1 a dead socket makes it return 0). There is no
// reconnecting such a device; RECONFIGURE needs netlink.
type IoctlSession struct {
	Index uint32
	done  chan struct{}
	err   error
}

// Done is closed when NBD_DO_IT has returned and the device is cleared.
func (s *IoctlSession) Done() <-chan struct{} { return s.done }

// Err is NBD_DO_IT's error once Done is closed.
func (s *IoctlSession) Err() error {
	<-s.done
	return s.err
}

// ioctlStartTimeout bounds the wait for the device to start after DO_IT.
const ioctlStartTimeout = 10 * time.Second

// AttachIoctl sets a device up with the ioctls NBD_SET_BLKSIZE, NBD_SET_SIZE,
// NBD_SET_TIMEOUT, NBD_SET_FLAGS and NBD_SET_SOCK, then runs NBD_DO_IT in a
// goroutine, and returns once the kernel has started the device. Only for
// kernels without the netlink family. cfg.Index nil picks a free device;
// ClientFlags, DeadConnTimeout and BackendID have no ioctl and are ignored.
func (s Sys) AttachIoctl(ctx context.Context, cfg ConnectConfig) (*IoctlSession, error) {
	if err := cfg.validate(os.Getpagesize()); err != nil {
		return nil, fmt.Errorf("nbd ioctl attach %s: %w", describe(cfg.Index), err)
	}
	var idx uint32
	if cfg.Index != nil {
		idx = *cfg.Index
	} else {
		var err error
		if idx, err = s.FreeDevice(); err != nil {
			return nil, fmt.Errorf("nbd ioctl attach: %w", err)
		}
	}
	dev := s.Node(idx)
	sess := &IoctlSession{Index: idx, done: make(chan struct{})}
	setup := make(chan error, 1)
	go sess.run(dev, cfg, setup)
	if err := <-setup; err != nil {
		return nil, fmt.Errorf("nbd ioctl attach %s: %w", dev, err)
	}
	err := waitFor(ctx, ioctlStartTimeout, func() (bool, error) {
		select {
		case <-sess.done:
			return true, nil
		default:
		}
		_, ok, err := s.PID(idx)
		return ok, err
	})
	select {
	case <-sess.done:
		return nil, fmt.Errorf("nbd ioctl attach %s: NBD_DO_IT returned at once: %w", dev, sess.err)
	default:
	}
	if err != nil {
		DisconnectIoctl(dev)
		return nil, fmt.Errorf("nbd ioctl attach %s: device did not start: %w", dev, err)
	}
	return sess, nil
}

// run does the whole ioctl sequence on one locked OS thread: the kernel
// remembers the task that issued the first NBD_SET_SOCK and refuses the
// others from another task ("Device being setup by another task").
func (s *IoctlSession) run(dev string, cfg ConnectConfig, setup chan<- error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(s.done)
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		s.err = err
		setup <- err
		return
	}
	defer f.Close()
	if err := setupIoctls(f, cfg); err != nil {
		ioctl(f, ioctlClearSock, 0)
		s.err = err
		setup <- err
		return
	}
	setup <- nil
	s.err = ioctl(f, ioctlDoIt, 0)
	if s.err != nil {
		s.err = fmt.Errorf("NBD_DO_IT on %s: %w", dev, s.err)
	}
	ioctl(f, ioctlClearQue, 0)
	ioctl(f, ioctlClearSock, 0)
}

// ioctlStep is one configuration ioctl with its integer argument.
type ioctlStep struct {
	name string
	req  uintptr
	arg  uintptr
}

// setupSteps lists the configuration ioctls in the order nbd-client issues
// them: block size before size (SET_SIZE_BLOCKS counts in blocks), then
// timeout and flags. cfg must have been validated.
func setupSteps(cfg ConnectConfig) []ioctlStep {
	bs := cfg.BlockSize
	if bs == 0 {
		bs = 1024 // the kernel's default, as with netlink
	}
	timeout, _ := seconds("timeout", cfg.Timeout)
	// NBD_SET_SIZE's argument is an unsigned long; on 32-bit machines a
	// size beyond 4 GiB goes as whole blocks instead.
	size := ioctlStep{"NBD_SET_SIZE", ioctlSetSize, uintptr(cfg.Size)}
	if uint64(uintptr(cfg.Size)) != cfg.Size {
		size = ioctlStep{"NBD_SET_SIZE_BLOCKS", ioctlSetSizeBlocks, uintptr(cfg.Size / bs)}
	}
	return []ioctlStep{
		{"NBD_SET_BLKSIZE", ioctlSetBlkSize, uintptr(bs)},
		size,
		{"NBD_SET_TIMEOUT", ioctlSetTimeout, uintptr(timeout)},
		{"NBD_SET_FLAGS", ioctlSetFlags, uintptr(cfg.ServerFlags)},
	}
}

// setupIoctls issues setupSteps, then NBD_SET_SOCK for every socket.
func setupIoctls(f *os.File, cfg ConnectConfig) error {
	for _, st := range setupSteps(cfg) {
		if err := ioctl(f, st.req, st.arg); err != nil {
			return fmt.Errorf("%s %d: %w", st.name, st.arg, err)
		}
	}
	for i, sock := range cfg.Sockets {
		err := ioctl(f, ioctlSetSock, sock.Fd())
		runtime.KeepAlive(sock)
		if err != nil {
			return fmt.Errorf("NBD_SET_SOCK (socket %d): %w", i, err)
		}
	}
	return nil
}

// DisconnectIoctl disconnects dev with NBD_DISCONNECT and NBD_CLEAR_SOCK,
// the two ioctls the kernel also accepts on netlink-configured devices.
func DisconnectIoctl(dev string) error {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("disconnect %s: %w", dev, err)
	}
	defer f.Close()
	if err := ioctl(f, ioctlDisconnect, 0); err != nil {
		return fmt.Errorf("disconnect %s: NBD_DISCONNECT: %w", dev, err)
	}
	if err := ioctl(f, ioctlClearSock, 0); err != nil {
		return fmt.Errorf("disconnect %s: NBD_CLEAR_SOCK: %w", dev, err)
	}
	return nil
}

// Attach connects cfg over netlink, or with the ioctls when the kernel has
// no nbd netlink family. session is nil for a netlink attachment (the
// kernel owns it); for an ioctl attachment it must be kept, and this
// process must live as long as the device.
func (s Sys) Attach(ctx context.Context, cfg ConnectConfig) (index uint32, session *IoctlSession, err error) {
	c, err := Dial()
	if errors.Is(err, ErrNoFamily) {
		sess, err := s.AttachIoctl(ctx, cfg)
		if err != nil {
			return 0, nil, err
		}
		return sess.Index, sess, nil
	}
	if err != nil {
		return 0, nil, err
	}
	defer c.Close()
	idx, err := c.Connect(cfg)
	return idx, nil, err
}
