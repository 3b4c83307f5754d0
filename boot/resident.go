package boot

import (
	"context"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

// Resident runs the supervisor for the state file's device as the
// process that PID 1 left behind ("@nbdboot supervise STATE"): it locks
// itself in memory (swap may be on NBD), opts out of the OOM killer,
// ignores the signals a shutdown sends to every process (the root's
// storage must stay until the root is unmounted or read-only; systemd
// spares it for its '@' argv[0], busybox and sysvinit do not), and logs
// to the kernel log (and to console when the kernel's console level would
// hide those lines). It keeps the boot's DHCP lease (KeepLease). It
// returns only when ctx ends.
func Resident(ctx context.Context, st State, console io.Writer) error {
	clock := SystemClock()
	out := &kmsgWriter{console: console, open: openKmsg, showOnConsole: consoleShowsNotice()}
	log := NewLogger(out, clock)
	if up, err := Uptime(); err == nil && st.InitStart > 0 {
		log = NewLoggerSince(out, clock, clock.Now().Add(st.InitStart-up))
	}
	log.SetDebug(st.Debug)
	if err := SetProcessName(ProcessName); err != nil {
		log.Printf("supervisor: %v", err)
	}
	if n, err := lockMemory(); err != nil {
		log.Printf("supervisor: lock memory: %v (going on; swap on NBD could deadlock it)", err)
	} else {
		log.Printf("supervisor: memory locked (%.1f MiB of executable; %s)", float64(n)/(1<<20), lockedNow())
	}
	// The root's storage must not be the OOM killer's first victim.
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("-1000"), 0); err != nil {
		log.Printf("supervisor: oom_score_adj: %v", err)
	}
	signal.Ignore(syscall.SIGTERM, syscall.SIGHUP, syscall.SIGINT, syscall.SIGPIPE)
	r := &Reconnector{
		Dial:        ReconnectDial(Connector{Dialer: NewDialer(), Negotiate: Negotiate}),
		Reconfigure: NetlinkReconfigure,
		Clock:       clock,
		Log:         log,
	}
	go func() {
		if err := KeepLease(ctx, st, log); err != nil && ctx.Err() == nil {
			log.Printf("supervisor: %v", err)
		}
	}()
	s := &Supervisor{
		State: st, Log: log, Clock: clock,
		Watch:     NetlinkWatch,
		Reconnect: r.Reconnect,
		Probe:     func(ctx context.Context) error { return ReadBlock(st.Device) },
	}
	return s.Run(ctx)
}

// consoleShowsNotice reports whether the kernel prints KERN_NOTICE lines
// on the console (console_loglevel in /proc/sys/kernel/printk above 5;
// "quiet" makes it 4).
func consoleShowsNotice() bool {
	b, err := os.ReadFile("/proc/sys/kernel/printk")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return false
	}
	lvl, err := strconv.Atoi(f[0])
	return err == nil && lvl > kmsgLevel
}

// lockedNow is the VmRSS line of /proc/self/status (resident, hence locked, memory), for the log.
func lockedNow() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "VmRSS unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			return "resident " + strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:"))
		}
	}
	return "VmRSS unknown"
}
