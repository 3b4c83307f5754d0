package vm

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/nbdboot/nbdboot/internal/testutil"
)

// run runs a command and fails the test with its output on error.
func run(t *testing.T, argv ...string) {
	t.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
}

// TestTapNetNS boots a guest on a tap device inside a network namespace
// the test creates, with a server in the same namespace.
func TestTapNetNS(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "ip")
	kernel, root := Kernel(t), KernelRoot(t)
	initrd := smokeInitramfs(t, root, "virtio_pci", "virtio_net")

	ns := fmt.Sprintf("nbdvm-%d", os.Getpid())
	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	run(t, "ip", "-n", ns, "tuntap", "add", "tap0", "mode", "tap")
	run(t, "ip", "-n", ns, "addr", "add", "10.0.2.100/24", "dev", "tap0")
	run(t, "ip", "-n", ns, "link", "set", "tap0", "up")

	ln, err := listenInNetNS(ns, "10.0.2.100:10809")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "hello tap\n")
			c.Close()
		}
	}()

	m := Start(t, Options{
		Kernel:    kernel,
		Initramfs: initrd,
		Cmdline:   "quiet testinit.net=10.0.2.100:10809",
		NetNS:     ns,
		NICs:      []NIC{{Tap: "tap0"}},
	})
	m.ExpectLine(`^NBDBOOT-VM-NET hello tap$`, 60*time.Second)
	m.ExpectLine(`^NBDBOOT-VM-NET hello tap$`, 30*time.Second)
	m.WaitExit(30 * time.Second)
}

// listenInNetNS opens a TCP listener inside network namespace name; the
// socket stays in that namespace.
func listenInNetNS(name, addr string) (net.Listener, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer orig.Close()
	ns, err := netns.GetFromName(name)
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
	return ln, lerr
}
