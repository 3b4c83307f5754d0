package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/testutil"
	"github.com/nbdboot/nbdboot/internal/vm"
	"github.com/nbdboot/nbdboot/server"
)

// Where the guest reaches the server: the guestfwd relay's address inside
// qemu's user network, and the server's export name.
const (
	guestServer = "10.0.2.100:10809"
	exportName  = "root"
)

// Deadlines. TCG on two busy cores is slow and noisy: these are generous
// bounds for a hung boot, not performance assertions.
const (
	bootTimeout  = 150 * time.Second // qemu start to the root's init
	stepTimeout  = 60 * time.Second  // from one console marker to the next
	exitTimeout  = 60 * time.Second  // from the last marker to qemu's exit
	serverWait   = 15 * time.Second  // for the server log to show a connection
	maxBootsOnce = 2                 // qemu guests at once (2 cores)
)

// bootSlots bounds the guests running at once, whatever -parallel says.
var bootSlots = make(chan struct{}, maxBootsOnce)

// acquireBoot waits for a boot slot (released when the test ends, after
// its qemu is gone: cleanups run last-in first-out).
func acquireBoot(t *testing.T) {
	t.Helper()
	select {
	case bootSlots <- struct{}{}:
	case <-t.Context().Done():
		t.Fatal("test ended waiting for a boot slot")
	}
	t.Cleanup(func() { <-bootSlots })
}

// requireBootTools checks the host tools the boots use besides qemu and
// socat (checked by vm.Start).
func requireBootTools(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a VM (skipped under -short)")
	}
	testutil.RequireTool(t, "debugfs")
}

// newID is a fresh nbdtest.id: the test's name and a random suffix, so a
// value found in the image can only come from this boot.
func newID(t *testing.T) string {
	var b [4]byte
	rand.Read(b[:])
	name := regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-")
	return strings.Trim(name, "-") + "-" + hex.EncodeToString(b[:])
}

// relay is the guest's network card: qemu user networking, restrict=on,
// with guestServer relayed to the server's loopback address.
func relay(hostAddr string) []vm.NIC {
	return []vm.NIC{{User: &vm.UserNet{Forwards: []vm.Forward{{Guest: guestServer, Host: hostAddr}}}}}
}

// bootCase is one successful boot: an image served as exportName, a
// command line, and what the root's init must report.
type bootCase struct {
	image   string // under build/images
	offset  int64  // of the ext4 filesystem in the image (partition 1)
	cmdline string // nbdboot's part; the test adds rw and nbdtest.id
	device  string // the nbd device nbdboot must attach
	rootDev string // the root's source the root's init must report
	fstype  string // the root's filesystem type it must report
	conns   int    // connections the server must see
	// readOnly serves the image read-only: the guest's write must land
	// in its overlay, and the image must not change.
	readOnly bool
	// lateServer starts the server only after the guest failed to connect.
	lateServer bool
	// medium, when set, boots through the firmware from a medium it builds
	// with the whole kernel command line, instead of qemu's -kernel.
	medium func(t *testing.T, cmdline string) mediumBoot
	// prepare, when set, changes the copied image before it is served; a
	// read-only image must then equal the prepared one afterwards.
	prepare func(t *testing.T, img string)
	// expect is a console line nbdboot must print, when not "".
	expect string
}

// mediumBoot is how qemu boots a built medium.
type mediumBoot struct {
	args    []string      // firmware and drive arguments
	memory  string        // "" for the default
	timeout time.Duration // qemu start to nbdboot's attach; 0 for bootTimeout
}

// runBoot boots c and checks the whole path: nbdboot attaches the device
// with the expected connections, the guest reaches its root's init on the
// expected root, writes its id, powers off (qemu exits 0), the server saw
// the expected connections, and the write is in the image (or, read-only,
// the image is unchanged).
func runBoot(t *testing.T, c bootCase) {
	requireBootTools(t)
	acquireBoot(t)
	img := vm.CopyImage(t, c.image)
	orig := vm.Image(t, c.image)
	if c.prepare != nil {
		c.prepare(t, img)
		orig = img + ".prepared"
		copyFile(t, img, orig)
	}
	export := server.ExportConfig{Name: exportName, Path: img, ReadOnly: c.readOnly}
	id := newID(t)
	addr := "127.0.0.1:0"
	var srv *vm.Server
	if c.lateServer {
		addr = vm.ReservePort(t)
	} else {
		srv = vm.StartServer(t, vm.ServerConfig{Addr: addr, Exports: []server.ExportConfig{export}})
		addr = srv.Addr
	}
	cmdline := fmt.Sprintf("quiet %s rw nbdtest.id=%s", c.cmdline, id)
	opts := vm.Options{Cmdline: cmdline, NICs: relay(addr)}
	attachTimeout := bootTimeout
	if c.medium != nil {
		mb := c.medium(t, vm.BaseCmdline+" "+cmdline)
		opts = vm.Options{Firmware: true, Memory: mb.memory, NICs: relay(addr), Args: mb.args}
		if mb.timeout > 0 {
			attachTimeout = mb.timeout
		}
	}
	m := vm.Start(t, opts)
	if c.lateServer {
		m.ExpectLine(`nbdboot: .*connect: no server answered yet`, bootTimeout)
		t.Logf("after %v: the guest failed to connect; starting the server on %s", m.Since().Round(time.Millisecond), addr)
		srv = vm.StartServer(t, vm.ServerConfig{Addr: addr, Exports: []server.ExportConfig{export}})
	}
	att := m.ExpectLine(`nbdboot: .*attach: \S+ on (/dev/nbd[0-9]+), ([0-9]+) connection`, attachTimeout)
	if att[1] != c.device || att[2] != strconv.Itoa(c.conns) {
		t.Errorf("nbdboot attached %s with %s connection(s), want %s with %d", att[1], att[2], c.device, c.conns)
	}
	if c.expect != "" {
		m.ExpectLine(c.expect, stepTimeout)
	}
	m.ExpectLine(`nbdboot: .*switch_root: .* on `+regexp.QuoteMeta(att[1]), stepTimeout)
	root := m.ExpectLine(`NBDBOOT-ROOT-INIT ok id=`+regexp.QuoteMeta(id)+` mode=write root=(\S+) (\S+) (\S+)`, stepTimeout)
	qemuToRoot := m.Since()
	if root[1] != c.rootDev || root[2] != c.fstype || !hasOpt(root[3], "rw") {
		t.Errorf("root's init reports root %s %s %s; want %s %s rw", root[1], root[2], root[3], c.rootDev, c.fstype)
	}
	m.ExpectLine(`NBDBOOT-ROOT-WROTE id=`+regexp.QuoteMeta(id)+` value=`+vm.RootValue(id), stepTimeout)
	checkConns(t, srv, c.conns)
	m.WaitExit(exitTimeout)
	if err := srv.Stop(); err != nil {
		t.Error(err)
	}
	if c.readOnly {
		checkUnchanged(t, img, orig)
	} else {
		checkWritten(t, img, c.offset, id)
	}
	logTimings(t, m, qemuToRoot)
}

// checkConns asserts the server saw exactly want connections.
func checkConns(t *testing.T, srv *vm.Server, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), serverWait)
	defer cancel()
	if err := srv.Log.WaitCount(ctx, vm.LogConnected, want); err != nil {
		t.Errorf("server: %v; log:\n%s", err, srv.Log.Tail(20))
	}
	if got := srv.Log.Count(vm.LogConnected); got != want {
		t.Errorf("server saw %d connections, want %d; log:\n%s", got, want, srv.Log.Tail(20))
	}
}

func hasOpt(opts, o string) bool {
	for _, x := range strings.Split(opts, ",") {
		if x == o {
			return true
		}
	}
	return false
}

// logTimings prints (never asserts) the boot's timings and sizes.
func logTimings(t *testing.T, m *vm.Machine, qemuToRoot time.Duration) {
	t.Helper()
	lines, err := readLines(m.ConsolePath())
	if err != nil {
		t.Logf("timings: %v", err)
		return
	}
	tm := parseTimings(lines)
	tm.QemuToRoot = qemuToRoot
	if fi, err := os.Stat(vm.Initramfs(t)); err == nil {
		tm.InitramfsSize = fi.Size()
	}
	t.Logf("timings: %s", tm)
}

// TestBootStaticIP: a static ip= in the kernel's syntax, the dracut form
// of nbdroot=, the whole device as root.
func TestBootStaticIP(t *testing.T) {
	t.Parallel()
	runBoot(t, bootCase{
		image:   "root.ext4",
		cmdline: "ip=10.0.2.15::10.0.2.2:255.255.255.0:guest:eth0:off nbdroot=nbd:10.0.2.100:10809/root:ext4",
		device:  "/dev/nbd0",
		rootDev: "/dev/nbd0",
		fstype:  "ext4",
		conns:   1,
	})
}

// TestBootDHCP: ip=dhcp from qemu's DHCP server, the URI form of nbdroot=.
func TestBootDHCP(t *testing.T) {
	t.Parallel()
	runBoot(t, bootCase{
		image:   "root.ext4",
		cmdline: "ip=dhcp nbdroot=nbd://10.0.2.100:10809/root",
		device:  "/dev/nbd0",
		rootDev: "/dev/nbd0",
		fstype:  "ext4",
		conns:   1,
	})
}

// TestBootPartition: the root is partition 1 of an MBR disk image.
func TestBootPartition(t *testing.T) {
	t.Parallel()
	runBoot(t, bootCase{
		image:   "root-part.img",
		offset:  1 << 20,
		cmdline: "ip=dhcp root=/dev/nbd0p1 nbdroot=nbd:10.0.2.100:10809/root",
		device:  "/dev/nbd0",
		rootDev: "/dev/nbd0p1",
		fstype:  "ext4",
		conns:   1,
	})
}

// TestBootMultiConn: two connections to a server advertising
// CAN_MULTI_CONN; the server must see both.
func TestBootMultiConn(t *testing.T) {
	t.Parallel()
	runBoot(t, bootCase{
		image:   "root.ext4",
		cmdline: "ip=dhcp nbdroot=nbd://10.0.2.100:10809/root nbdboot.connections=2",
		device:  "/dev/nbd0",
		rootDev: "/dev/nbd0",
		fstype:  "ext4",
		conns:   2,
	})
}

// TestBootServerLate: the server is down when the guest first connects
// and starts only once the console shows the failed attempt; the boot
// retries and succeeds.
func TestBootServerLate(t *testing.T) {
	t.Parallel()
	runBoot(t, bootCase{
		image:      "root.ext4",
		cmdline:    "ip=dhcp nbdroot=nbd://10.0.2.100:10809/root nbdboot.retry=120",
		device:     "/dev/nbd0",
		rootDev:    "/dev/nbd0",
		fstype:     "ext4",
		conns:      1,
		lateServer: true,
	})
}

// TestBootSquashfsOverlay: a read-only squashfs export under a tmpfs
// overlay (nbdboot.overlay=tmpfs): the guest's root is writable, its
// write stays in memory, and the server's image does not change.
func TestBootSquashfsOverlay(t *testing.T) {
	t.Parallel()
	runBoot(t, bootCase{
		image:    "root.squashfs",
		cmdline:  "ip=dhcp nbdroot=nbd://10.0.2.100:10809/root nbdboot.overlay=tmpfs",
		device:   "/dev/nbd0",
		rootDev:  "overlay",
		fstype:   "overlay",
		conns:    1,
		readOnly: true,
	})
}

// TestBootDirtyJournalOverlay: a read-only export whose ext4 journal
// needs recovery (as after a crashed read-write boot of the image; here
// the flag is set with debugfs) under nbdboot.overlay=tmpfs. The kernel
// refuses a read-only mount of it ("write access unavailable"); nbdboot
// says so and mounts the lower layer with noload, and the machine boots.
func TestBootDirtyJournalOverlay(t *testing.T) {
	t.Parallel()
	testutil.RequireTool(t, "debugfs")
	runBoot(t, bootCase{
		image:    "root.ext4",
		cmdline:  "ip=dhcp nbdroot=nbd://10.0.2.100:10809/root nbdboot.overlay=tmpfs",
		device:   "/dev/nbd0",
		rootDev:  "overlay",
		fstype:   "overlay",
		conns:    1,
		readOnly: true,
		prepare: func(t *testing.T, img string) {
			out, err := exec.Command("debugfs", "-w", "-R", "feature needs_recovery", img).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "needs_recovery") {
				t.Fatalf("debugfs: set needs_recovery on %s: %v: %s", img, err, out)
			}
		},
		expect: `nbdboot: .*the ext4 journal needs recovery, which the read-only device cannot take: mounting it without replaying the journal \(noload\)`,
	})
}

// TestBootInitramfsToolsForm: Debian initramfs-tools' nbdroot=HOST,EXPORT,nbdX
// naming the device; the root is attached on /dev/nbd1, not the first
// free device.
func TestBootInitramfsToolsForm(t *testing.T) {
	t.Parallel()
	runBoot(t, bootCase{
		image:   "root.ext4",
		cmdline: "ip=dhcp nbdroot=10.0.2.100,root,nbd1 root=/dev/nbd1",
		device:  "/dev/nbd1",
		rootDev: "/dev/nbd1",
		fstype:  "ext4",
		conns:   1,
	})
}

// copyFile copies src to dst (images are small enough to read whole).
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
