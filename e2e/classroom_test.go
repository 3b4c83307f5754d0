package e2e

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/boot"
	"github.com/nbdboot/nbdboot/internal/testutil"
	"github.com/nbdboot/nbdboot/internal/vm"
	"github.com/nbdboot/nbdboot/server"
)

// A classroom: three guests boot the same base image at the same time,
// each writes a file holding its own id, powers off, and boots again to
// read the file back. Most set-ups reach the server through qemu user
// networking and guestfwd relays, so all three guests connect from
// 127.0.0.1: only the client id nbdboot sends (NAME/MAC) tells them
// apart. One set-up is a lab network instead (a namespace with a bridge
// and a tap per guest, vm.NewLab), where the server keys the plain
// NAME by each guest's address.

// classGuests is how many guests boot at once.
const classGuests = 3

// classGrace is the ephemeral export's grace= option: short, so the
// test does not wait long for the drops; the check boots start only
// after the server logged them.
const classGrace = server.Duration(2 * time.Second)

// dropWait bounds the wait for the server to drop the ephemeral overlays
// once the guests powered off.
const dropWait = 30 * time.Second

// guest is one machine of the classroom.
type guest struct {
	name string // g1, g2, g3
	mac  string // its network card's, and so its client id
	id   string // nbdtest.id
	ip   string // its static address on a lab network
	tap  string // its tap device on a lab network
}

func classroomGuests(t *testing.T) []guest {
	base := newID(t)
	gs := make([]guest, classGuests)
	for i := range gs {
		gs[i] = guest{
			name: fmt.Sprintf("g%d", i+1),
			mac:  fmt.Sprintf("52:54:00:c1:a5:%02x", i+1),
		}
		gs[i].id = base + "-" + gs[i].name
		gs[i].ip = vm.LabGuestIP(i)
	}
	return gs
}

// classroom is one way of giving every guest its own writable root.
type classroom struct {
	image  string // under build/images
	export server.ExportConfig
	// cmdline is nbdboot's options; the test adds ip=, nbdroot=, rw,
	// nbdtest.mode and nbdtest.id.
	cmdline string
	// lab: the guests are on a lab network (taps on a bridge in a
	// namespace) with their own addresses; else on qemu user networking.
	lab bool
	// perClient: nbdboot must attach NAME/MAC (a server-side overlay);
	// else the plain NAME.
	perClient bool
	// fallback: nbdboot must say it fell back from NAME/MAC to NAME.
	fallback bool
	// client is the client key the server must list a guest's overlay
	// under (persistent set-ups).
	client  func(guest) string
	rootDev string // the root's source the root's init must report
	fstype  string
	// keep: the second boot sees the first boot's file; else a clean image.
	keep bool
	// waitDrop: the second boot starts once the server dropped every
	// guest's ephemeral overlay.
	waitDrop bool
	// restart: the server is stopped after the first boots and a new one
	// started on the same state directory for the second.
	restart bool
}

func byMAC(g guest) string { return g.mac }
func byIP(g guest) string  { return g.ip }

// TestClassroom boots three guests at once from one base image, in four
// set-ups, one after the other: persistent server-side overlays keyed by
// MAC (the rebooted guest sees its own file, not the others', across a
// restart of the server; nbdcopy reads each overlay back as NAME/MAC and
// finds that guest's file), ephemeral ones (a clean image after the
// export's grace period), client-side tmpfs overlays over a read-only
// export (a clean image; the server never gets a write), and persistent
// overlays of the plain NAME keyed by each guest's address on a lab
// network. The base image's sha256 never changes.
//
// It does not call t.Parallel: the three guests of a set-up are the only
// guests of the package running meanwhile (the parallel boot tests wait
// until the sequential tests are done), which keeps 3 TCG guests on two
// cores within the package's budget.
func TestClassroom(t *testing.T) {
	requireBootTools(t)
	for _, tc := range []struct {
		name string
		c    classroom
	}{
		{"persistent", classroom{
			image:     "root.ext4",
			export:    server.ExportConfig{Name: exportName, COW: server.COWPersistent},
			perClient: true, client: byMAC, rootDev: "/dev/nbd0", fstype: "ext4",
			keep: true, restart: true,
		}},
		{"ephemeral", classroom{
			image:     "root.ext4",
			export:    server.ExportConfig{Name: exportName, COW: server.COWEphemeral, Grace: classGrace},
			perClient: true, rootDev: "/dev/nbd0", fstype: "ext4",
			waitDrop: true,
		}},
		{"tmpfs", classroom{
			image:   "root.ext4",
			export:  server.ExportConfig{Name: exportName, ReadOnly: true},
			cmdline: "nbdboot.overlay=tmpfs", fallback: true, rootDev: "overlay", fstype: "overlay",
		}},
		{"persistent-by-address", classroom{
			image:   "root.ext4",
			export:  server.ExportConfig{Name: exportName, COW: server.COWPersistent},
			cmdline: "nbdboot.clientid=" + boot.ClientIDNone, lab: true,
			client: byIP, rootDev: "/dev/nbd0", fstype: "ext4",
			keep: true,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { runClassroom(t, tc.c) })
	}
}

// runClassroom runs the write boots of all guests at once, then their
// check boots at once, and checks the server's side.
func runClassroom(t *testing.T, c classroom) {
	start := time.Now()
	img := vm.CopyImage(t, c.image)
	baseSum := fileSHA256(t, img)
	c.export.Path = img
	gs := classroomGuests(t)
	var lab *vm.Lab
	listen := func() net.Listener { return loopbackListener(t) }
	if c.lab {
		lab = vm.NewLab(t, len(gs))
		for i := range gs {
			gs[i].tap = lab.Taps[i]
		}
		listen = func() net.Listener {
			ln, err := lab.Listen(net.JoinHostPort(lab.Server, "10809"))
			if err != nil {
				t.Fatal(err)
			}
			return ln
		}
	}
	state := filepath.Join(t.TempDir(), "state")
	srv := vm.StartServer(t, vm.ServerConfig{Listener: listen(), StateDir: state, Debug: true, Exports: []server.ExportConfig{c.export}})

	write := bootClass(t, srv.Addr, lab, c, gs, "write")
	if c.restart {
		if err := srv.Stop(); err != nil {
			t.Fatal(err)
		}
		srv = vm.StartServer(t, vm.ServerConfig{Listener: listen(), StateDir: state, Debug: true, Exports: []server.ExportConfig{c.export}})
	}
	if c.waitDrop {
		if err := srv.WaitLog(vm.LogDroppedOverlay, len(gs), dropWait); err != nil {
			t.Fatalf("ephemeral overlays not dropped after the guests powered off: %v", err)
		}
		for _, g := range gs {
			if srv.Log.Count("client="+g.mac) == 0 {
				t.Errorf("the server never logged client %s", g.mac)
			}
		}
		if l := srv.Overlays.List(); len(l) != 0 {
			t.Errorf("overlays left after the grace period: %+v", l)
		}
	}
	check := bootClass(t, srv.Addr, lab, c, gs, "check")

	if c.perClient && c.keep {
		checkOverlayFiles(t, srv.Addr, gs)
	}
	if c.client != nil {
		// A guest on a tap that powers off (poweroff -f, no NBD_CMD_DISC)
		// leaves a half-open connection that the server only notices
		// later; through a relay the connection closes with qemu.
		if !c.lab {
			if err := srv.WaitAllClosed(time.Minute); err != nil {
				t.Error(err)
			}
		}
		checkOverlays(t, srv, gs, c.client, !c.lab)
	}
	if err := srv.Stop(); err != nil {
		t.Error(err)
	}
	if got := fileSHA256(t, img); got != baseSum {
		t.Errorf("base image %s changed: sha256 %s, was %s", img, got, baseSum)
	}
	if n := countLines(srv.Log, "request refused", "cmd=WRITE"); n != 0 {
		t.Errorf("the server refused %d writes; log:\n%s", n, srv.Log.Tail(20))
	}
	t.Logf("timings: write boots %s (qemu to root's init %s); check boots %s (%s); total %s",
		write.wall.Round(time.Millisecond), write.roots(), check.wall.Round(time.Millisecond), check.roots(),
		time.Since(start).Round(time.Millisecond))
}

// classRun is the outcome of one round of boots.
type classRun struct {
	wall time.Duration   // first qemu start to last qemu exit
	root []time.Duration // per guest, qemu start to the root's init
}

func (r classRun) roots() string {
	s := make([]string, len(r.root))
	for i, d := range r.root {
		s[i] = d.Round(100 * time.Millisecond).String()
	}
	return strings.Join(s, " ")
}

// bootClass boots every guest at once in mode (write or check) and
// follows their consoles; it fails the test unless every guest booted as
// c says, printed what mode asks for and powered off.
func bootClass(t *testing.T, addr string, lab *vm.Lab, c classroom, gs []guest, mode string) classRun {
	t.Helper()
	start := time.Now()
	ms := make([]*vm.Machine, len(gs))
	for i, g := range gs {
		o := vm.Options{Name: g.name + "-" + mode}
		ipArg := "ip=dhcp"
		server := guestServer
		if lab != nil {
			o.NetNS = lab.NS
			o.NICs = []vm.NIC{{Tap: g.tap, MAC: g.mac}}
			ipArg = fmt.Sprintf("ip=%s::%s:%s:%s:eth0:off", g.ip, lab.Server, lab.Netmask, g.name)
			server = addr
		} else {
			o.NICs = relay(addr)
			o.NICs[0].MAC = g.mac
		}
		o.Cmdline = fmt.Sprintf("quiet %s nbdroot=nbd://%s/%s %s rw nbdtest.mode=%s nbdtest.id=%s",
			ipArg, server, exportName, c.cmdline, mode, g.id)
		ms[i] = vm.Start(t, o)
	}
	guestAddr := guestServer
	if lab != nil {
		guestAddr = addr
	}
	run := classRun{root: make([]time.Duration, len(gs))}
	errs := make([]error, len(gs))
	var wg sync.WaitGroup
	for i, g := range gs {
		wg.Go(func() {
			run.root[i], errs[i] = c.follow(ms[i], g, guestAddr, mode)
			if errs[i] == nil {
				errs[i] = waitPoweroff(ms[i])
			}
		})
	}
	wg.Wait()
	run.wall = time.Since(start)
	failed := false
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s boot of %s (MAC %s) after %v: %v", mode, gs[i].name, gs[i].mac, ms[i].Since().Round(time.Millisecond), err)
			failed = true
		}
	}
	if failed {
		t.FailNow()
	}
	return run
}

// follow reads a guest's console up to what its root's init reports for
// mode and returns the time from qemu's start to the root's init. The
// console also matches the unterminated last line, so every pattern ends
// with something that only a complete field is followed by.
func (c classroom) follow(m *vm.Machine, g guest, server, mode string) (time.Duration, error) {
	export := exportName
	if c.perClient {
		export += "/" + g.mac
	}
	if c.fallback {
		// A plain export: every boot first asks for NAME/MAC, gets
		// "unknown export" and falls back.
		if _, err := m.Expect(`nbdboot: .*connect: .*does not know export "`+exportName+"/"+g.mac+
			`".*falling back to the plain export "`+exportName+`"`, bootTimeout); err != nil {
			return 0, err
		}
	}
	att, err := m.Expect(`nbdboot: .*attach: (\S+) on (/dev/nbd[0-9]+),`, bootTimeout)
	if err != nil {
		return 0, err
	}
	if want := "nbd://" + server + "/" + export; att[1] != want || att[2] != "/dev/nbd0" {
		return 0, fmt.Errorf("nbdboot attached %s on %s, want %s on /dev/nbd0", att[1], att[2], want)
	}
	root, err := m.Expect(`NBDBOOT-ROOT-INIT ok id=`+regexp.QuoteMeta(g.id)+` mode=`+mode+` root=(\S+) (\S+) (r[ow]),`, stepTimeout)
	if err != nil {
		return 0, err
	}
	toRoot := m.Since()
	if root[1] != c.rootDev || root[2] != c.fstype || root[3] != "rw" {
		return toRoot, fmt.Errorf("root's init reports root %s %s %s; want %s %s rw", root[1], root[2], root[3], c.rootDev, c.fstype)
	}
	switch mode {
	case "write":
		_, err = m.Expect(`NBDBOOT-ROOT-WROTE id=`+regexp.QuoteMeta(g.id)+` value=`+vm.RootValue(g.id), stepTimeout)
	case "check":
		var got []string
		got, err = m.Expect(`NBDBOOT-ROOT-CHECK (none|id=\S+ value=[0-9a-f]{16})`, stepTimeout)
		want := "none"
		if c.keep {
			want = strings.TrimSpace(strings.ReplaceAll(writtenFile(g.id), "\n", " "))
		}
		if err == nil && strings.TrimSpace(got[1]) != want {
			err = fmt.Errorf("the rebooted guest found %q, want %q", strings.TrimSpace(got[1]), want)
		}
	}
	return toRoot, err
}

// waitPoweroff waits for qemu to exit after the guest powered off.
func waitPoweroff(m *vm.Machine) error {
	code, err := m.Wait(exitTimeout)
	switch {
	case err != nil:
		return err
	case m.Panicked() != "":
		return fmt.Errorf("kernel panicked: %s", m.Panicked())
	case code != 0:
		return fmt.Errorf("qemu exited with status %d", code)
	}
	return nil
}

// checkOverlays asserts that the server keeps one persistent overlay per
// guest, keyed by client(guest), holding its writes, and (closed) none
// connected.
func checkOverlays(t *testing.T, srv *vm.Server, gs []guest, client func(guest) string, closed bool) {
	t.Helper()
	list := srv.Overlays.List()
	if len(list) != len(gs) {
		t.Errorf("server lists %d overlays, want %d: %+v", len(list), len(gs), list)
		return
	}
	for i, g := range gs { // List is sorted by client: the guests' order
		o := list[i]
		if o.Export != exportName || o.Client != client(g) || !o.Persistent || o.Size == 0 || (closed && o.Connections != 0) {
			t.Errorf("overlay %d = %+v, want %s/%s, persistent, written, no connection (if %v)", i, o, exportName, client(g), closed)
		}
	}
}

// checkOverlayFiles reads every guest's overlay back from the server
// with nbdcopy, as NAME/MAC, and checks that it holds that guest's file.
func checkOverlayFiles(t *testing.T, addr string, gs []guest) {
	t.Helper()
	nbdcopy := testutil.RequireTool(t, "nbdcopy")
	dir := t.TempDir()
	for _, g := range gs {
		img := filepath.Join(dir, g.name+".img")
		uri := "nbd://" + addr + "/" + exportName + "/" + g.mac
		if out, err := exec.Command(nbdcopy, uri, img).CombinedOutput(); err != nil {
			t.Errorf("nbdcopy %s: %v: %s", uri, err, out)
			continue
		}
		got, err := readGuestFile(img, 0, "/written-by-guest")
		if err != nil {
			t.Errorf("overlay of %s (%s): %v", g.name, uri, err)
		} else if want := writtenFile(g.id); got != want {
			t.Errorf("overlay of %s (%s) holds %q, want %q", g.name, uri, got, want)
		}
	}
}

// countLines counts the log lines holding every one of substrs.
func countLines(l *vm.LineLog, substrs ...string) int {
	n := 0
next:
	for _, line := range l.Lines() {
		for _, s := range substrs {
			if !strings.Contains(line, s) {
				continue next
			}
		}
		n++
	}
	return n
}
