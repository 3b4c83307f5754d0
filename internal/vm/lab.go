package vm

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/nbdboot/nbdboot/internal/testutil"
)

// Lab is a lab's network: a network namespace the test creates, with a
// bridge (br0) holding the server's address and one tap device per
// guest, so that every guest has its own address as seen by the server.
// Nothing in it reaches the host's network. Guests join it through
// Options{NetNS: lab.NS, NICs: []NIC{{Tap: lab.Taps[i]}}}; servers listen
// in it through Listen (in this process) or Command (another program).
type Lab struct {
	NS      string   // the namespace's name (ip netns)
	Bridge  string   // the bridge's name inside NS: br0
	Server  string   // the server's address on the bridge: LabServerIP
	Netmask string   // the bridge's netmask: LabNetmask
	Taps    []string // the guests' tap devices, tap1 … tapN, on the bridge
}

// Lab addressing: the server on the bridge, guest i at LabGuestIP(i).
// Addresses from .50 up are free for a DHCP server's range.
const (
	LabServerIP = "10.0.3.1"
	LabNetmask  = "255.255.255.0"
	LabPrefix   = 24
)

// LabGuestIP is guest i's static address on a lab network (10.0.3.11+i).
func LabGuestIP(i int) string { return fmt.Sprintf("10.0.3.%d", 11+i) }

var labSeq atomic.Int32

// NewLab creates a namespace with a bridge holding LabServerIP and n taps
// on it; Cleanup deletes it (and so everything in it). It needs root and
// ip(8), and skips (or, under make test, fails) the test without them.
func NewLab(t testing.TB, n int) *Lab {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "ip")
	l := &Lab{NS: fmt.Sprintf("nbdlab-%d-%d", os.Getpid(), labSeq.Add(1)), Bridge: "br0", Server: LabServerIP, Netmask: LabNetmask}
	ipCmd(t, "netns", "add", l.NS)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", l.NS).Run() })
	ipCmd(t, "-n", l.NS, "link", "set", "lo", "up")
	ipCmd(t, "-n", l.NS, "link", "add", l.Bridge, "type", "bridge")
	ipCmd(t, "-n", l.NS, "addr", "add", fmt.Sprintf("%s/%d", l.Server, LabPrefix), "dev", l.Bridge)
	ipCmd(t, "-n", l.NS, "link", "set", l.Bridge, "up")
	for i := range n {
		tap := fmt.Sprintf("tap%d", i+1)
		ipCmd(t, "-n", l.NS, "tuntap", "add", tap, "mode", "tap")
		ipCmd(t, "-n", l.NS, "link", "set", tap, "master", l.Bridge)
		ipCmd(t, "-n", l.NS, "link", "set", tap, "up")
		l.Taps = append(l.Taps, tap)
	}
	return l
}

// ipCmd runs ip(8) and fails the test with its output on error.
func ipCmd(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// Command is a command that runs program inside the lab's namespace
// (through ip netns exec, which execs it: the process is the program's).
func (l *Lab) Command(program string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", l.NS, program}, args...)...)
}

// Listen opens a TCP listener inside the namespace; the socket stays
// there while the test's goroutines serve it.
func (l *Lab) Listen(addr string) (net.Listener, error) {
	var ln net.Listener
	err := l.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, l.NS, err)
	}
	return ln, nil
}

// Do runs fn on a thread switched into the lab's namespace: sockets fn
// opens live there (and keep working after Do returns).
func (l *Lab) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("current network namespace: %w", err)
	}
	defer orig.Close()
	ns, err := netns.GetFromName(l.NS)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("network namespace %s: %w", l.NS, err)
	}
	defer ns.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace %s: %w", l.NS, err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		// The thread stays locked, so Go discards it with its namespace.
		return fmt.Errorf("back to the original network namespace: %w", errors.Join(ferr, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// Peer adds another host to the lab's wire: a namespace of its own whose
// eth0 (a veth pair, the other end on the bridge) holds ip. The result is
// a Lab whose Bridge is that eth0 and Server that ip, so StartDnsmasq and
// Start run there: a DHCP server on another machine of the network, which
// a server on the bridge sees as a real one would (its own broadcasts do
// not reach a program on the same host). Cleanup deletes it.
func (l *Lab) Peer(t testing.TB, ip string) *Lab {
	t.Helper()
	p := &Lab{NS: fmt.Sprintf("%s-p%d", l.NS, labSeq.Add(1)), Bridge: "eth0", Server: ip, Netmask: l.Netmask}
	ipCmd(t, "netns", "add", p.NS)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", p.NS).Run() })
	veth := fmt.Sprintf("veth%d", labSeq.Add(1))
	ipCmd(t, "-n", l.NS, "link", "add", veth, "type", "veth", "peer", "name", p.Bridge, "netns", p.NS)
	ipCmd(t, "-n", l.NS, "link", "set", veth, "master", l.Bridge)
	ipCmd(t, "-n", l.NS, "link", "set", veth, "up")
	ipCmd(t, "-n", p.NS, "link", "set", "lo", "up")
	ipCmd(t, "-n", p.NS, "addr", "add", fmt.Sprintf("%s/%d", ip, LabPrefix), "dev", p.Bridge)
	ipCmd(t, "-n", p.NS, "link", "set", p.Bridge, "up")
	return p
}
