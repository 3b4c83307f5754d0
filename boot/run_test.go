package boot

import (
	"context"
	"errors"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/bootcfg"
	"github.com/nbdboot/nbdboot/nbdnl"
	"github.com/nbdboot/nbdboot/protocol"
)

// indexOf returns the position of the first event with the prefix, or -1.
func indexOf(events []string, prefix string) int {
	return slices.IndexFunc(events, func(e string) bool { return strings.HasPrefix(e, prefix) })
}

// wantOrder checks that the prefixes occur in this order.
func wantOrder(t *testing.T, events []string, prefixes ...string) {
	t.Helper()
	last := -1
	for _, p := range prefixes {
		i := indexOf(events[last+1:], p)
		if i < 0 {
			t.Fatalf("event %q missing after position %d; events:\n%s", p, last, strings.Join(events, "\n"))
		}
		last += i + 1
	}
}

func TestRunOrder(t *testing.T) {
	w := newWorld()
	_, err := Run(context.Background(), w.env)
	if !errors.Is(err, errExeced) {
		t.Fatalf("Run = %v, want the switch to exec init; log:\n%s", err, w.log)
	}
	ev := w.tr.list()
	wantOrder(t, ev,
		"mount proc /proc proc",
		"mount sysfs /sys",
		"mount devtmpfs /dev",
		"mount devpts /dev/pts",
		"mount tmpfs /run tmpfs",
		"cmdline",
		"modalias",
		"network up",
		"dial 10.0.2.2:10809",
		"negotiate \"root\"",
		"attach index=0 conns=1 size=1073741824 bs=512 flags=0x105 backend=nbd://10.0.2.2:10809/root",
		"wait /dev/nbd0",
		"open /dev/nbd0",
		"mkdir /newroot",
		"mount /dev/nbd0 /newroot ext4 0x1 \"\"",
		"mkdir /run/nbdboot",
		"write /run/nbdboot/state.json",
		"switch_root /newroot init=\"/sbin/init\" args=[\"single\"]",
		"supervisor /run/nbdboot/state.json",
		"exec init",
	)
	// nbd and the guessed ext4 load in the background after the device
	// drivers, each before it is needed.
	wantOrder(t, ev, "modalias", "modprobe nbd", "attach")
	wantOrder(t, ev, "modalias", "modprobe ext4", "mount /dev/nbd0")
	st, err := UnmarshalState(w.fs.files[StatePath])
	if err != nil {
		t.Fatal(err)
	}
	if st.Device != "/dev/nbd0" || st.BackendID != "nbd://10.0.2.2:10809/root" || st.Size != 1<<30 ||
		st.BlockSize != 512 || st.DeadConn != 120*time.Second || st.Interface != "eth0" || st.IfIndex != 2 || st.Connections != 1 {
		t.Errorf("state = %+v", st)
	}
	if !slices.Equal(w.sw.spec.Env, initEnv) {
		t.Errorf("init env = %q", w.sw.spec.Env)
	}
	log := w.log.String()
	for _, want := range []string{
		"nbdboot: [   0.000s] cmdline: console=ttyS0 nbdroot=10.0.2.2,10809,root",
		"] network: eth0 10.0.2.15/24 via dhcp (0.300s)",
		"] switch_root: /newroot to nbd://10.0.2.2:10809/root on /dev/nbd0; 0.300s from /init to switch_root",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestRetryUntilServerUp(t *testing.T) {
	w := newWorld()
	start := w.clock.Now()
	w.server.upAt["10.0.2.2:10809"] = start.Add(5 * time.Second)
	_, err := Run(context.Background(), w.env)
	if !errors.Is(err, errExeced) {
		t.Fatalf("Run = %v; log:\n%s", err, w.log)
	}
	if w.server.dials < 3 {
		t.Errorf("dials = %d, want retries", w.server.dials)
	}
	// Backoff is capped at 2s: the server is found within 2s of coming up.
	if took := w.clock.Now().Sub(start); took < 5*time.Second || took > 7500*time.Millisecond {
		t.Errorf("connected after %s of fake time, want 5s..7.5s", took)
	}
}

func TestServersTriedInOrder(t *testing.T) {
	w := newWorld()
	w.cfg.NBD.Servers = []bootcfg.Server{{Host: "10.0.2.3", Port: 10809}, {Host: "10.0.2.2", Port: 10809}}
	if _, err := Run(context.Background(), w.env); !errors.Is(err, errExeced) {
		t.Fatalf("Run = %v", err)
	}
	wantOrder(t, w.tr.list(), "dial 10.0.2.3:10809 refused", "dial 10.0.2.2:10809", "attach")
}

func TestConnectDeadline(t *testing.T) {
	w := newWorld()
	w.cfg.Retry = 3 * time.Second
	delete(w.server.upAt, "10.0.2.2:10809")
	start := w.clock.Now()
	_, err := Run(context.Background(), w.env)
	var be *Error
	if !errors.As(err, &be) || be.Phase != "connect" || be.Hint != hintConnect {
		t.Fatalf("Run = %#v, want a connect failure", err)
	}
	if !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "nbd://10.0.2.2:10809/root") {
		t.Errorf("error does not say what failed: %v", err)
	}
	if took := w.clock.Now().Sub(start); took < 3*time.Second || took > 4*time.Second {
		t.Errorf("gave up after %s, want the 3s deadline (+network)", took)
	}
	if indexOf(w.tr.list(), "attach") >= 0 {
		t.Error("attached without a server")
	}
}

func TestMultiConn(t *testing.T) {
	for _, tc := range []struct {
		name       string
		configured int
		flags      uint16
		want       int
	}{
		{"multi-conn server", 4, 1 | protocol.FlagCanMultiConn, 4},
		{"no CAN_MULTI_CONN", 4, 1, 1},
		{"one configured", 1, 1 | protocol.FlagCanMultiConn, 1},
		{"zero configured", 0, 1 | protocol.FlagCanMultiConn, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld()
			w.cfg.Connections = tc.configured
			w.server.export.Flags = tc.flags
			if _, err := Run(context.Background(), w.env); !errors.Is(err, errExeced) {
				t.Fatalf("Run = %v", err)
			}
			if got := len(w.dev.req.Conns); got != tc.want {
				t.Errorf("attached %d connections, want %d", got, tc.want)
			}
			if w.server.dials != tc.want {
				t.Errorf("dialed %d times, want %d", w.server.dials, tc.want)
			}
			st, _ := UnmarshalState(w.fs.files[StatePath])
			if st.Connections != tc.want {
				t.Errorf("state connections = %d", st.Connections)
			}
		})
	}
}

func TestOddExportSize(t *testing.T) {
	w := newWorld()
	w.server.export.Size = 1<<20 + 100
	w.server.export.MinBlock = 4096
	if _, err := Run(context.Background(), w.env); !errors.Is(err, errExeced) {
		t.Fatalf("Run = %v", err)
	}
	wantOrder(t, w.tr.list(), "attach index=0 conns=1 size=1048576 bs=4096 ")

	w = newWorld()
	w.server.export.Size = 511
	_, err := Run(context.Background(), w.env)
	if err == nil || !strings.Contains(err.Error(), "less than one 512-byte block") {
		t.Fatalf("Run = %v", err)
	}
}

func TestPartitionRoot(t *testing.T) {
	w := newWorld()
	w.cfg.RootDevice = &nbdnl.Device{Index: 0, Partition: 2}
	w.cfg.ReadOnly = false
	if _, err := Run(context.Background(), w.env); !errors.Is(err, errExeced) {
		t.Fatalf("Run = %v; log:\n%s", err, w.log)
	}
	wantOrder(t, w.tr.list(),
		"attach index=0 conns=1 size=1073741824 bs=512 ",
		"rescan /dev/nbd0",
		"wait /dev/nbd0p2",
		"open /dev/nbd0p2",
		"mount /dev/nbd0p2 /newroot ext4 0x0 \"\"",
	)
}

func TestReadOnlyExportMountsReadOnly(t *testing.T) {
	w := newWorld()
	w.cfg.ReadOnly = false
	w.server.export.Flags |= protocol.FlagReadOnly
	if _, err := Run(context.Background(), w.env); !errors.Is(err, errExeced) {
		t.Fatalf("Run = %v", err)
	}
	wantOrder(t, w.tr.list(), "mount /dev/nbd0 /newroot ext4 0x1")
}

func TestOverlayBoot(t *testing.T) {
	w := newWorld()
	w.cfg.Overlay = bootcfg.OverlayTmpfs
	w.cfg.RootFSType = "squashfs"
	if _, err := Run(context.Background(), w.env); !errors.Is(err, errExeced) {
		t.Fatalf("Run = %v; log:\n%s", err, w.log)
	}
	ev := w.tr.list()
	if indexOf(ev, "open /dev/nbd0") >= 0 {
		t.Error("probed despite rootfstype=")
	}
	wantOrder(t, ev, "modprobe squashfs", "modprobe overlay",
		"mount /dev/nbd0 /run/nbdboot/lower squashfs 0x1",
		"mount tmpfs /run/nbdboot/rw tmpfs",
		"mount overlay /newroot overlay 0x0 \"lowerdir=/run/nbdboot/lower,upperdir=/run/nbdboot/rw/upper,workdir=/run/nbdboot/rw/work\"",
		"switch_root")
}

// A read-only export whose ext4 journal needs recovery (a crashed
// read-write boot) refuses a plain read-only mount with EROFS; the boot
// says so and mounts the lower layer with noload.
func TestOverlayJournalNeedsRecovery(t *testing.T) {
	w := newWorld()
	w.cfg.Overlay = bootcfg.OverlayTmpfs
	w.server.export.Flags |= protocol.FlagReadOnly
	w.fs.mountHook = func(source, target, fstype string, flags uintptr, data string) error {
		if source == "/dev/nbd0" && !hasOption(data, "noload") {
			return syscall.EROFS
		}
		return nil
	}
	if _, err := Run(context.Background(), w.env); !errors.Is(err, errExeced) {
		t.Fatalf("Run = %v; log:\n%s", err, w.log)
	}
	wantOrder(t, w.tr.list(),
		"mount /dev/nbd0 /run/nbdboot/lower ext4 0x1 \"\"",
		"mount /dev/nbd0 /run/nbdboot/lower ext4 0x1 \"noload\"",
		"mount tmpfs /run/nbdboot/rw tmpfs",
		"switch_root")
	if !strings.Contains(w.log.String(), "the ext4 journal needs recovery, which the read-only device cannot take: mounting it without replaying the journal (noload)") {
		t.Errorf("log does not say what happened:\n%s", w.log)
	}
}

// Without the recovery condition (another error, or noload failing too)
// the boot fails, naming both attempts and the journal.
func TestJournalRecoveryNoloadFails(t *testing.T) {
	w := newWorld()
	w.cfg.Overlay = bootcfg.OverlayTmpfs
	w.fs.mountHook = func(source, target, fstype string, flags uintptr, data string) error {
		if source == "/dev/nbd0" {
			return syscall.EROFS
		}
		return nil
	}
	_, err := Run(context.Background(), w.env)
	var e *Error
	if !errors.As(err, &e) || e.Hint != hintJournal || !strings.Contains(err.Error(), "noload") {
		t.Fatalf("Run = %v, want a root error with the journal hint", err)
	}
}

func TestDHCPRootPath(t *testing.T) {
	w := newWorld()
	w.cfg.NBD = nil
	w.cfg.FromDHCP = true
	if _, err := Run(context.Background(), w.env); !errors.Is(err, errExeced) {
		t.Fatalf("Run = %v; log:\n%s", err, w.log)
	}
	wantOrder(t, w.tr.list(), "network up", "dial 10.0.2.2:10809", "negotiate \"root\"",
		"mount /dev/nbd0 /newroot squashfs") // the fstype came with the root-path
	if !strings.Contains(w.log.String(), `dhcp: root-path "nbd:10.0.2.2:10809/root:squashfs": nbd://10.0.2.2:10809/root`) {
		t.Errorf("log:\n%s", w.log)
	}

	w = newWorld()
	w.cfg.NBD = nil
	w.cfg.FromDHCP = true
	w.net.info.RootPath = ""
	_, err := Run(context.Background(), w.env)
	var be *Error
	if !errors.As(err, &be) || be.Phase != "dhcp" || !strings.Contains(err.Error(), "no root-path") {
		t.Fatalf("Run = %v, want a dhcp root-path failure", err)
	}
}

func TestNetworkRetriesThenFails(t *testing.T) {
	w := newWorld()
	w.cfg.Retry = 5 * time.Second
	w.net.err = errors.New("no DHCP answer on eth0")
	_, err := Run(context.Background(), w.env)
	var be *Error
	if !errors.As(err, &be) || be.Phase != "network" || be.Hint != hintNetwork {
		t.Fatalf("Run = %v, want a network failure", err)
	}
	if n := strings.Count(strings.Join(w.tr.list(), "\n"), "network up"); n < 3 {
		t.Errorf("network tried %d times, want retries", n)
	}
}

// A failure runs the rescue shell with the message; Rescue never returns
// on its own (the fake shell cancels the context to end the test).
func TestFatalRunsShell(t *testing.T) {
	w := newWorld()
	w.cfg.Retry = time.Second
	w.net.err = errors.New("no DHCP answer on eth0 within 1s")
	ctx, cancel := context.WithCancel(context.Background())
	w.shell.stop = cancel
	Main(ctx, w.env)
	if len(w.shell.reasons) != 1 || !strings.Contains(w.shell.reasons[0], "no DHCP answer on eth0") {
		t.Fatalf("shell reasons = %q", w.shell.reasons)
	}
	log := w.log.String()
	for _, want := range []string{"FAILED: network: no network within 1s: no DHCP answer on eth0", "check: " + hintNetwork, "rescue: starting a shell"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

func TestMalformedCmdlineRunsShell(t *testing.T) {
	w := newWorld()
	w.parseErr = errors.New(`nbdroot="10.0.2.2,port": bad port "port"`)
	ctx, cancel := context.WithCancel(context.Background())
	w.shell.stop = cancel
	Main(ctx, w.env)
	if len(w.shell.reasons) != 1 || !strings.Contains(w.shell.reasons[0], "nbdroot=") {
		t.Fatalf("shell reasons = %q", w.shell.reasons)
	}
	if !strings.Contains(w.log.String(), `FAILED: cmdline: nbdroot="10.0.2.2,port": bad port`) {
		t.Errorf("log:\n%s", w.log)
	}
	if indexOf(w.tr.list(), "network") >= 0 {
		t.Error("went on after a bad command line")
	}
}

func TestBadRootParameter(t *testing.T) {
	w := newWorld()
	w.env.ReadCmdline = func() (string, error) { return "nbdroot=nbd://10.0.2.2/root root=/dev/sda1", nil }
	w.env.Parse = ParseCommandLine
	_, err := Run(context.Background(), w.env)
	if err == nil || !strings.Contains(err.Error(), "root=/dev/sda1") {
		t.Fatalf("Run = %v, want an error naming root=", err)
	}
}

// lineWriter passes each written line to a channel.
type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) {
	w <- string(p)
	return len(p), nil
}

// Without a shell, PID 1 reports and blocks instead of returning.
func TestRescueWithoutShell(t *testing.T) {
	w := newWorld()
	w.shell.err = ErrNoShell
	lines := make(lineWriter, 100)
	w.env.Log = NewLogger(lines, w.clock)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Rescue(ctx, w.env, nil, fail("network", errors.New("boom"), hintNetwork))
		close(done)
	}()
	for l := range lines {
		if strings.Contains(l, "rescue: "+ErrNoShell.Error()) {
			break
		}
	}
	select {
	case <-done:
		t.Fatal("Rescue returned without a shell")
	default:
	}
	cancel()
	<-done
}

func TestRescueShellDisabled(t *testing.T) {
	w := newWorld()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	Rescue(ctx, w.env, &bootcfg.Config{Shell: false}, errors.New("boom"))
	if len(w.shell.reasons) != 0 {
		t.Error("ran a shell despite nbdboot.shell=0")
	}
	if !strings.Contains(w.log.String(), "shell disabled") {
		t.Errorf("log:\n%s", w.log)
	}
}

func TestRDBreakPoints(t *testing.T) {
	w := newWorld()
	w.cfg.Breaks = []bootcfg.BreakPoint{bootcfg.BreakPreMount, bootcfg.BreakMount, bootcfg.BreakPrePivot}
	if _, err := Run(context.Background(), w.env); !errors.Is(err, errExeced) {
		t.Fatalf("Run = %v", err)
	}
	wantOrder(t, w.tr.list(), "network up", "shell", "attach", "shell", "mount /dev/nbd0 /newroot", "shell", "switch_root")
	want := []string{"rd.break=pre-mount", "rd.break=mount", "rd.break=pre-pivot"}
	if !slices.Equal(w.shell.reasons, want) {
		t.Errorf("reasons = %q, want %q", w.shell.reasons, want)
	}
}

func TestModuleFailure(t *testing.T) {
	w := newWorld()
	w.mods.fail = map[string]error{"nbd": errors.New("module nbd not found")}
	_, err := Run(context.Background(), w.env)
	var be *Error
	if !errors.As(err, &be) || be.Phase != "modules" {
		t.Fatalf("Run = %v", err)
	}
	if i := indexOf(w.tr.list(), "attach"); i >= 0 {
		t.Errorf("attached without nbd: %v", w.tr.list())
	}
}

func TestUnknownFilesystem(t *testing.T) {
	w := newWorld()
	w.fs.devices["/dev/nbd0"] = make([]byte, 8192)
	_, err := Run(context.Background(), w.env)
	if err == nil || !errors.Is(err, ErrUnknownFS) || !strings.Contains(err.Error(), "rootfstype=") {
		t.Fatalf("Run = %v", err)
	}
}

func TestMalformedIPNotRetried(t *testing.T) {
	w := newWorld()
	w.net.err = fail("cmdline", errors.New(`ip=10.0.2.15:::255.255.255.0::eth0:bogus: unknown autoconf "bogus"`), hintCmdline)
	_, err := Run(context.Background(), w.env)
	var be *Error
	if !errors.As(err, &be) || be.Phase != "cmdline" || !strings.Contains(err.Error(), "ip=") {
		t.Fatalf("Run = %v", err)
	}
	if n := strings.Count(strings.Join(w.tr.list(), "\n"), "network up"); n != 1 {
		t.Errorf("network tried %d times, want 1", n)
	}
}

// A shell that exits at once is restarted with growing pauses.
func TestRescueShellRestartPauses(t *testing.T) {
	w := newWorld()
	ctx, cancel := context.WithCancel(context.Background())
	runs := 0
	w.env.Shell = shellFunc(func(ctx context.Context, reason string) error {
		if runs++; runs == 5 {
			cancel()
		}
		return nil
	})
	start := w.clock.Now()
	Rescue(ctx, w.env, nil, errors.New("boom"))
	// Pauses of 1, 2, 4, 8 and 16 seconds after the five runs (the fake
	// clock moves when a pause is asked for).
	if runs != 5 || w.clock.Now().Sub(start) != 31*time.Second {
		t.Errorf("%d runs over %s of fake time", runs, w.clock.Now().Sub(start))
	}
	if got := shellPause(16*time.Second, 0); got != 30*time.Second {
		t.Errorf("pause after 16s = %s, want the 30s cap", got)
	}
	if got := shellPause(8*time.Second, time.Minute); got != 0 {
		t.Errorf("pause after a long session = %s", got)
	}
}

type shellFunc func(ctx context.Context, reason string) error

func (f shellFunc) Run(ctx context.Context, reason string) error { return f(ctx, reason) }
