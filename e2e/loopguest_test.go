package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/testutil"
	"github.com/nbdboot/nbdboot/internal/vm"
)

// loopGuest is a guest whose root's init loops over writes and
// checksummed reads on its root (nbdtest.mode=loop, nbdtest.loops=0)
// until the test types a line on its console.
type loopGuest struct {
	t *testing.T
	m *vm.Machine
}

// startLoopGuest boots cmdline (nbdboot's part) in loop mode.
func startLoopGuest(t *testing.T, cmdline string, nics []vm.NIC) *loopGuest {
	t.Helper()
	full := "quiet " + cmdline + " rw nbdtest.mode=loop nbdtest.loops=0 nbdtest.id=" + newID(t)
	return &loopGuest{t: t, m: vm.Start(t, vm.Options{Cmdline: full, NICs: nics})}
}

// monitor runs a qemu monitor command or fails the test.
func (g *loopGuest) monitor(cmd string) {
	g.t.Helper()
	if out, err := g.m.Monitor(cmd); err != nil || strings.TrimSpace(out) != "" {
		g.t.Fatalf("qemu monitor %q: %q, %v", cmd, out, err)
	}
}

// resumedRounds is how many rounds must complete after an outage: the
// first may have started before it ended, the second ran wholly after.
const resumedRounds = 2

// resumed waits for resumedRounds loop rounds after an outage that ended
// at back, fails on a failed round, and prints (never asserts) how long
// after back the first round completed.
func (g *loopGuest) resumed(back time.Time, what string) {
	g.t.Helper()
	for i := 0; i < resumedRounds; i++ {
		l := g.m.ExpectLine(`NBDBOOT-ROOT-LOOP ([0-9]+) (ok|FAIL.*)`, stepTimeout)
		if l[2] != "ok" {
			g.t.Errorf("round %s after the outage: %s", l[1], l[2])
		}
		if i == 0 {
			g.t.Logf("recovery: the guest's I/O resumed %.3fs after the %s (round %s done)",
				time.Since(back).Seconds(), what, l[1])
		}
	}
}

// finish stops the loop and checks its verdict: no failed round, no
// kernel I/O or filesystem error, root still read-write; then waits for
// the power-off and prints the supervisor's lines.
func (g *loopGuest) finish() {
	g.t.Helper()
	if err := g.m.Send("stop\n"); err != nil {
		g.t.Fatalf("type on the guest's console: %v", err)
	}
	done := g.m.ExpectLine(`NBDBOOT-ROOT-LOOP-DONE (ok|FAIL) rounds=([0-9]+) errors=([0-9]+) root=(\S*)`, stepTimeout)
	if done[1] != "ok" {
		g.t.Errorf("the guest's loop failed: %s", done[0])
		for _, l := range g.consoleLines("NBDBOOT-ROOT-DMESG") {
			g.t.Logf("  %s", l)
		}
	}
	g.m.WaitExit(exitTimeout)
	for _, l := range g.consoleLines("supervisor:") {
		g.t.Logf("console: %s", l)
	}
	g.checkSupervisor()
}

// supervisorRE is the root init's report of the resident supervisor.
var supervisorRE = regexp.MustCompile(`NBDBOOT-ROOT-SUPERVISOR pid=([0-9]+) exe=(\S+) rss=([0-9]*) cmdline=(.*)$`)

// checkSupervisor asserts what the root's init saw: one supervisor, with
// argv[0] "@nbdboot" (systemd spares it), running from the initramfs'
// deleted executable, that is from memory.
func (g *loopGuest) checkSupervisor() {
	g.t.Helper()
	lines := g.consoleLines("NBDBOOT-ROOT-SUPERVISOR ")
	if len(lines) != 1 {
		g.t.Errorf("the root's init saw %d supervisors, want 1: %q", len(lines), lines)
		return
	}
	m := supervisorRE.FindStringSubmatch(lines[0])
	if m == nil || !strings.HasPrefix(m[4], "@nbdboot supervise ") || !strings.HasSuffix(m[2], "(deleted)") {
		g.t.Errorf("supervisor: %q; want cmdline \"@nbdboot supervise STATE\" and a deleted executable", lines[0])
		return
	}
	g.t.Logf("supervisor: pid %s, executable %s, %s kB resident when the root's init started", m[1], m[2], m[3])
}

// consoleLines are the console lines containing substr.
func (g *loopGuest) consoleLines(substr string) []string {
	lines, err := readLines(g.m.ConsolePath())
	if err != nil {
		g.t.Logf("console: %v", err)
		return nil
	}
	var out []string
	for _, l := range lines {
		if strings.Contains(l, substr) {
			out = append(out, strings.TrimRight(l, "\r"))
		}
	}
	return out
}

// checkFsck replays the journal of a copy of the ext4 image the guest
// used (it powered off without unmounting) and checks the filesystem:
// e2fsck must find nothing to correct.
func checkFsck(t *testing.T, image string) {
	t.Helper()
	e2fsck := testutil.RequireTool(t, "e2fsck")
	cp := filepath.Join(t.TempDir(), "fsck.img")
	b, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// Replay the journal first (-p), then check (-fn): the second run must
	// report a clean filesystem.
	exec.Command(e2fsck, "-p", cp).Run()
	out, err := exec.Command(e2fsck, "-fn", cp).CombinedOutput()
	if err != nil {
		t.Errorf("e2fsck -fn of the guest's filesystem: %v\n%s", err, out)
	}
}
