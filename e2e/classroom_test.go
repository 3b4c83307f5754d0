package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/vm"
	"github.com/nbdboot/nbdboot/server"
)

// A classroom: three guests boot the same base image at the same time,
// each writes a file holding its own id, powers off, and boots again to
// read the file back. The guests reach the server through qemu user
// networking and guestfwd relays, so all three connect from 127.0.0.1:
// only the client id nbdboot sends (NAME/MAC) tells them apart.

// classGuests is how many guests boot at once.
const classGuests = 3

// classGrace is the ephemeral overlays' grace period: short, so the test
// does not wait long for the drops; the check boots start only after the
// server logged them.
const classGrace = 2 * time.Second

// dropWait bounds the wait for the server to drop the ephemeral overlays
// once the guests powered off.
const dropWait = 30 * time.Second

// guest is one machine of the classroom.
type guest struct {
	name string // g1, g2, g3
	mac  string // its network card's, and so its client id
	id   string // nbdtest.id
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
	}
	return gs
}

// classroom is one way of giving every guest its own writable root.
type classroom struct {
	image   string // under build/images
	export  server.ExportConfig
	cmdline string // nbdboot's part; the test adds rw, nbdtest.mode and nbdtest.id
	// perClient: nbdboot must attach NAME/MAC (a server-side overlay);
	// else it falls back to the plain NAME and says so on the console.
	perClient bool
	rootDev   string // the root's source the root's init must report
	fstype    string
	// keep: the second boot sees the first boot's file; else a clean image.
	keep bool
	// waitDrop: the second boot starts once the server dropped every
	// guest's ephemeral overlay.
	waitDrop bool
	// restart: the server is stopped after the first boots and a new one
	// started on the same state directory for the second.
	restart bool
}

// TestClassroom boots three guests at once from one base image, in three
// set-ups, one after the other: persistent server-side overlays (the
// rebooted guest sees its own file, not the others'), ephemeral ones (a
// clean image after the overlay's grace period), and client-side tmpfs
// overlays over a read-only export (a clean image; the server never gets
// a write). The persistent overlays also outlive a restart of the server
// between the two rounds. The base image's sha256 never changes.
//
// It does not call t.Parallel: the three guests of a set-up are the only
// guests of the package running meanwhile (the parallel boot tests wait
// until the sequential tests are done), which keeps 3 TCG guests on two
// cores within the package's budget.
func TestClassroom(t *testing.T) {
	requireBootTools(t)
	const nbdroot = "ip=dhcp nbdroot=nbd://10.0.2.100:10809/" + exportName
	for _, tc := range []struct {
		name string
		c    classroom
	}{
		{"persistent", classroom{
			image:   "root.ext4",
			export:  server.ExportConfig{Name: exportName, COW: server.COWPersistent},
			cmdline: nbdroot, perClient: true, rootDev: "/dev/nbd0", fstype: "ext4",
			keep: true, restart: true,
		}},
		{"ephemeral", classroom{
			image:   "root.ext4",
			export:  server.ExportConfig{Name: exportName, COW: server.COWEphemeral},
			cmdline: nbdroot, perClient: true, rootDev: "/dev/nbd0", fstype: "ext4",
			waitDrop: true,
		}},
		{"tmpfs", classroom{
			image:   "root.ext4",
			export:  server.ExportConfig{Name: exportName, ReadOnly: true},
			cmdline: nbdroot + " nbdboot.overlay=tmpfs", rootDev: "overlay", fstype: "overlay",
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
	state := filepath.Join(t.TempDir(), "state")
	srv := startLabServer(t, state, classGrace, c.export)
	gs := classroomGuests(t)

	write := bootClass(t, srv.Addr, c, gs, "write")
	if c.restart {
		if err := srv.Stop(); err != nil {
			t.Fatal(err)
		}
		srv = startLabServer(t, state, classGrace, c.export)
	}
	if c.waitDrop {
		if err := srv.WaitLog(logDroppedOverlay, len(gs), dropWait); err != nil {
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
	check := bootClass(t, srv.Addr, c, gs, "check")

	if c.export.COW == server.COWPersistent {
		checkOverlays(t, srv, gs)
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
func bootClass(t *testing.T, addr string, c classroom, gs []guest, mode string) classRun {
	t.Helper()
	start := time.Now()
	ms := make([]*vm.Machine, len(gs))
	for i, g := range gs {
		nics := relay(addr)
		nics[0].MAC = g.mac
		ms[i] = vm.Start(t, vm.Options{
			Name:    g.name + "-" + mode,
			Cmdline: fmt.Sprintf("quiet %s rw nbdtest.mode=%s nbdtest.id=%s", c.cmdline, mode, g.id),
			NICs:    nics,
		})
	}
	run := classRun{root: make([]time.Duration, len(gs))}
	errs := make([]error, len(gs))
	var wg sync.WaitGroup
	for i, g := range gs {
		wg.Go(func() {
			run.root[i], errs[i] = c.follow(ms[i], g, mode)
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
func (c classroom) follow(m *vm.Machine, g guest, mode string) (time.Duration, error) {
	export := exportName
	if c.perClient {
		export += "/" + g.mac
	} else {
		// A plain export: every boot first asks for NAME/MAC, gets
		// "unknown export" and falls back.
		if _, err := m.Expect(`nbdboot: .*connect: .*falling back to the plain export "`+exportName+`"`, bootTimeout); err != nil {
			return 0, err
		}
	}
	att, err := m.Expect(`nbdboot: .*attach: (\S+) on (/dev/nbd[0-9]+),`, bootTimeout)
	if err != nil {
		return 0, err
	}
	if want := "nbd://" + guestServer + "/" + export; att[1] != want || att[2] != "/dev/nbd0" {
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
// guest, keyed by its MAC, holding its writes, none connected.
func checkOverlays(t *testing.T, srv *labServer, gs []guest) {
	t.Helper()
	list := srv.Overlays.List()
	if len(list) != len(gs) {
		t.Errorf("server lists %d overlays, want %d: %+v", len(list), len(gs), list)
		return
	}
	for i, g := range gs { // List is sorted by client: the MACs' order
		o := list[i]
		if o.Export != exportName || o.Client != g.mac || !o.Persistent || o.Size == 0 || o.Connections != 0 {
			t.Errorf("overlay %d = %+v, want %s/%s, persistent, written, no connection", i, o, exportName, g.mac)
		}
	}
}

// countLines counts the log lines holding every one of substrs.
func countLines(l *lineLog, substrs ...string) int {
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
