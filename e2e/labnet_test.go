package e2e

import (
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

// labNet is a lab's network: a network namespace the test creates, with
// a bridge holding the server's address and one tap device per guest,
// so that every guest has its own address as seen by the server. Nothing
// in it reaches the host's network.
type labNet struct {
	NS      string
	Server  string // the server's address on the bridge
	Netmask string
	Taps    []string
}

// Lab addressing: the server on the bridge, guest i at labGuestIP(i).
const (
	labServerIP = "10.0.3.1"
	labNetmask  = "255.255.255.0"
)

func labGuestIP(i int) string { return fmt.Sprintf("10.0.3.%d", 11+i) }

var labNetSeq atomic.Int32

// newLabNet creates the namespace with a bridge and n taps; Cleanup
// deletes it (and so everything in it).
func newLabNet(t *testing.T, n int) *labNet {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "ip")
	l := &labNet{NS: fmt.Sprintf("nbdlab-%d-%d", os.Getpid(), labNetSeq.Add(1)), Server: labServerIP, Netmask: labNetmask}
	ipCmd(t, "netns", "add", l.NS)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", l.NS).Run() })
	ipCmd(t, "-n", l.NS, "link", "set", "lo", "up")
	ipCmd(t, "-n", l.NS, "link", "add", "br0", "type", "bridge")
	ipCmd(t, "-n", l.NS, "addr", "add", labServerIP+"/24", "dev", "br0")
	ipCmd(t, "-n", l.NS, "link", "set", "br0", "up")
	for i := range n {
		tap := fmt.Sprintf("tap%d", i+1)
		ipCmd(t, "-n", l.NS, "tuntap", "add", tap, "mode", "tap")
		ipCmd(t, "-n", l.NS, "link", "set", tap, "master", "br0")
		ipCmd(t, "-n", l.NS, "link", "set", tap, "up")
		l.Taps = append(l.Taps, tap)
	}
	return l
}

// ipCmd runs ip(8) and fails the test with its output on error.
func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// Listen opens a TCP listener inside the namespace; the socket stays
// there while the test's goroutines serve it.
func (l *labNet) Listen(addr string) (net.Listener, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer orig.Close()
	ns, err := netns.GetFromName(l.NS)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer ns.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	ln, lerr := net.Listen("tcp", addr)
	if err := netns.Set(orig); err != nil {
		// The thread stays locked, so Go discards it with its namespace.
		if ln != nil {
			ln.Close()
		}
		return nil, fmt.Errorf("back to the original network namespace: %w", err)
	}
	runtime.UnlockOSThread()
	if lerr != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, l.NS, lerr)
	}
	return ln, nil
}
