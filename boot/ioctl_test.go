package boot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/bootcfg"
	"github.com/nbdboot/nbdboot/nbdnl"
)

// socketConn is one end of a unix socket pair, a net.Conn with File().
func socketConn(t *testing.T) net.Conn {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Close(fds[1])
	f := os.NewFile(uintptr(fds[0]), "socketpair")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// fakeSysfs is a /sys/block with the devices nbd0 … nbd(n-1), none
// connected or sized (free).
func fakeSysfs(t *testing.T, n int) nbdnl.Sys {
	t.Helper()
	dir := t.TempDir()
	for i := range n {
		d := filepath.Join(dir, fmt.Sprintf("nbd%d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "size"), []byte("0\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return nbdnl.Sys{Block: dir, Dev: "/dev"}
}

// setConnected writes the pid attribute the kernel shows for a running device.
func setConnected(t *testing.T, sys nbdnl.Sys, idx uint32) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(sys.Block, fmt.Sprintf("nbd%d", idx), "pid"), []byte("42\n"), 0o644); err != nil {
		t.Error(err)
	}
}

// fakeKeeper records its start and, unless exitErr is set, connects the
// device in the fake sysfs; with exitErr it ends at once.
type fakeKeeper struct {
	t       *testing.T
	sys     nbdnl.Sys
	started []nbdnl.ConnectConfig
	exitErr error
}

func (k *fakeKeeper) Start(cfg nbdnl.ConnectConfig) (<-chan error, error) {
	k.started = append(k.started, cfg)
	exited := make(chan error, 1)
	if k.exitErr != nil {
		exited <- k.exitErr
		return exited, nil
	}
	setConnected(k.t, k.sys, *cfg.Index)
	return exited, nil
}

// fakeNetlink is a netlink connection whose Connect marks the device connected.
type fakeNetlink struct {
	t        *testing.T
	sys      nbdnl.Sys
	connects int
}

func (n *fakeNetlink) Connect(cfg nbdnl.ConnectConfig) (uint32, error) {
	n.connects++
	setConnected(n.t, n.sys, 0)
	return 0, nil
}
func (n *fakeNetlink) Close() error { return nil }

func TestNetlinkDeviceChoosesIoctl(t *testing.T) {
	noFamily := fmt.Errorf("%w (look up %q: not found)", nbdnl.ErrNoFamily, nbdnl.FamilyName)
	for _, tc := range []struct {
		name      string
		force     bool
		dialErr   error
		wantIoctl bool
		wantWhy   string
	}{
		{"netlink", false, nil, false, ""},
		{"no family", false, noFamily, true, "no nbd netlink family"},
		{"forced", true, nil, true, "nbdboot.attach=ioctl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sys := fakeSysfs(t, 2)
			nl := &fakeNetlink{t: t, sys: sys}
			keeper := &fakeKeeper{t: t, sys: sys}
			dials := 0
			d := NetlinkDevice{Sys: sys, Keeper: keeper, Dial: func() (NetlinkConn, error) {
				dials++
				if tc.dialErr != nil {
					return nil, tc.dialErr
				}
				return nl, nil
			}}
			req := AttachRequest{ConnectConfig: nbdnl.ConnectConfig{Size: 1 << 30, BlockSize: 512, ServerFlags: 0x105, Timeout: 30 * time.Second},
				Conns: []net.Conn{socketConn(t), socketConn(t)}, Ioctl: tc.force}
			att, err := d.Attach(context.Background(), req)
			if err != nil {
				t.Fatalf("Attach: %v", err)
			}
			if att.Ioctl != tc.wantIoctl || att.Why != tc.wantWhy || att.Index != 0 {
				t.Errorf("Attach = %+v, want ioctl %v (%q) on index 0", att, tc.wantIoctl, tc.wantWhy)
			}
			if tc.force && dials != 0 {
				t.Errorf("forced ioctl dialed netlink %d times", dials)
			}
			if !tc.wantIoctl {
				if nl.connects != 1 || len(keeper.started) != 0 {
					t.Errorf("netlink: %d connects, %d keepers; want 1, 0", nl.connects, len(keeper.started))
				}
				return
			}
			if len(keeper.started) != 1 || nl.connects != 0 {
				t.Fatalf("%d keepers, %d netlink connects; want 1, 0", len(keeper.started), nl.connects)
			}
			got := keeper.started[0]
			want := req.ConnectConfig
			if got.Index == nil || *got.Index != 0 || len(got.Sockets) != 2 {
				t.Errorf("keeper index %v with %d sockets; want 0 with 2", got.Index, len(got.Sockets))
			}
			got.Index, got.Sockets = nil, nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("keeper config %+v, want %+v", got, want)
			}
		})
	}
}

func TestNetlinkDeviceKeeperDies(t *testing.T) {
	sys := fakeSysfs(t, 1)
	keeper := &fakeKeeper{t: t, sys: sys, exitErr: errors.New("exit status 1")}
	d := NetlinkDevice{Sys: sys, Keeper: keeper}
	idx := uint32(0)
	_, err := d.Attach(context.Background(), AttachRequest{ConnectConfig: nbdnl.ConnectConfig{Index: &idx, Size: 4096, BlockSize: 512},
		Conns: []net.Conn{socketConn(t)}, Ioctl: true})
	if err == nil || !strings.Contains(err.Error(), "ioctl attach /dev/nbd0 (nbdboot.attach=ioctl): the keeper process ended before the device started: exit status 1") {
		t.Errorf("Attach error = %v", err)
	}
}

func TestKeeperArgs(t *testing.T) {
	idx := uint32(3)
	cfg := nbdnl.ConnectConfig{Index: &idx, Size: 1 << 40, BlockSize: 4096, ServerFlags: 0x10d, Timeout: 10 * time.Second,
		Sockets: make([]*os.File, 4)}
	args := KeeperArgs(cfg)
	if args[0] != KeeperMode || args[len(args)-1] != "/dev/nbd3" {
		t.Errorf("KeeperArgs = %q", args)
	}
	got, n, err := ParseKeeperArgs(args[1:])
	want := cfg
	want.Sockets = nil
	if err != nil || n != 4 || !reflect.DeepEqual(got, want) {
		t.Errorf("ParseKeeperArgs(%q) = %+v, %d, %v; want %+v, 4", args[1:], got, n, err, want)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-size=10", "-sockets=1"}, "want one device"},
		{[]string{"-size=10", "-sockets=1", "/dev/nbd0p1"}, `device "/dev/nbd0p1": want /dev/nbdN`},
		{[]string{"-size=10", "-sockets=1", "/dev/sda"}, `device "/dev/sda": want /dev/nbdN`},
		{[]string{"-sockets=1", "/dev/nbd0"}, "-size: want a size above 0"},
		{[]string{"-size=10", "-sockets=0", "/dev/nbd0"}, "-sockets=0: want 1 to 16"},
		{[]string{"-size=10", "-sockets=17", "/dev/nbd0"}, "-sockets=17: want 1 to 16"},
		{[]string{"-size=x", "/dev/nbd0"}, `invalid value "x" for flag -size`},
	} {
		_, _, err := ParseKeeperArgs(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseKeeperArgs(%q) = %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

// TestRunIoctlState: a forced ioctl attachment is logged as such and
// recorded in the state file for the supervisor.
func TestRunIoctlState(t *testing.T) {
	w := newWorld()
	w.cfg.Attach = bootcfg.AttachIoctl
	_, err := Run(context.Background(), w.env)
	if !errors.Is(err, errExeced) {
		t.Fatalf("Run = %v; log:\n%s", err, w.log)
	}
	if !w.dev.req.Ioctl {
		t.Error("attach request without Ioctl")
	}
	st, err := UnmarshalState(w.fs.files[StatePath])
	if err != nil || !st.Ioctl {
		t.Errorf("state = %+v, %v; want Ioctl", st, err)
	}
	if !strings.Contains(w.log.String(), "attach: nbd://10.0.2.2:10809/root on /dev/nbd0, 1 connection(s), block size 512, timeout 30s, dead-conn timeout 2m0s via ioctl (nbdboot.attach=ioctl)") {
		t.Errorf("no ioctl attach line in:\n%s", w.log)
	}
}

// TestSupervisorIoctl: an ioctl-attached root is not reconfigurable: the
// supervisor says so once and neither watches nor reconnects.
func TestSupervisorIoctl(t *testing.T) {
	lines := make(lineWriter, 100)
	clock := newFakeClock()
	s := &Supervisor{
		State: State{Index: 0, Device: "/dev/nbd0", Target: bootcfg.Address{Server: bootcfg.Server{Host: "a", Port: 10809}, Export: "root"}, Connections: 1,
			Timeout: 30 * time.Second, Ioctl: true},
		Log: NewLogger(lines, clock), Clock: clock,
		Watch: func(ctx context.Context) (<-chan LinkDead, error) {
			t.Error("ioctl root: Watch called")
			return nil, errors.New("no")
		},
		Reconnect: func(ctx context.Context, st *State) (Recovery, error) {
			t.Error("ioctl root: Reconnect called")
			return Recovery{}, errors.New("no")
		},
		Probe: func(ctx context.Context) error { t.Error("ioctl root: Probe called"); return nil },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	waitLine(t, lines, "supervisor: resident for /dev/nbd0")
	waitLine(t, lines, "supervisor: /dev/nbd0 is attached with ioctls and held by the keeper process: reconnect unavailable")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(lines)
	var rest []string
	for l := range lines {
		rest = append(rest, l)
	}
	if slices.ContainsFunc(rest, func(l string) bool { return strings.Contains(l, "reconnect") }) {
		t.Errorf("more lines: %q", rest)
	}
}
