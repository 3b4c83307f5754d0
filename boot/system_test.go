package boot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nbdboot/nbdboot/internal/testutil"
	"golang.org/x/sys/unix"
)

// Mounting twice on the same target mounts once: the early mounts are
// idempotent.
func TestOSFSMountIdempotent(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	fs := OSFS{}
	for i := 0; i < 2; i++ {
		if err := fs.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755"); err != nil {
			testutil.Missing(t, "mount tmpfs: %v", err)
		}
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	if n := mountsAt(t, dir); n != 1 {
		t.Errorf("%d mounts on %s, want 1", n, dir)
		for ; n > 1; n-- {
			unix.Unmount(dir, unix.MNT_DETACH)
		}
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if isMountPoint(sub) {
		t.Errorf("%s reported as a mount point", sub)
	}
}

// mountsAt counts the mounts on dir in /proc/self/mountinfo.
func mountsAt(t *testing.T, dir string) int {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			n++
		}
	}
	return n
}

// ExecSupervisor starts the binary as "@nbdboot supervise STATE" from /
// with a clean environment; the test binary plays the supervisor (see
// TestMain).
func TestExecSupervisorStart(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "report")
	if err := (ExecSupervisor{Exe: exe}).Start(out); err != nil {
		t.Fatal(err)
	}
	report := waitFile(t, out)
	for _, want := range []string{"argv=@nbdboot supervise " + out, "cwd=/", "HOME=/", "TERM=linux", "XDG_CACHE_HOME=/run/nbdboot/cache"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, "GOFLAGS") || strings.Contains(report, "NBDBOOT_") {
		t.Errorf("the environment leaked:\n%s", report)
	}
}

func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[0] == SupervisorArgv0 && os.Args[1] == SupervisorMode {
		cwd, _ := os.Getwd()
		r := "argv=" + strings.Join(os.Args, " ") + "\ncwd=" + cwd + "\n" + strings.Join(os.Environ(), "\n") + "\n"
		os.WriteFile(os.Args[2]+".tmp", []byte(r), 0o644)
		os.Rename(os.Args[2]+".tmp", os.Args[2])
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// waitFile waits for a file another process renames into place. The
// process gives no other signal, so this polls on a ticker until the
// test's deadline.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	ctx := t.Context()
	if err := WaitForPath(ctx, path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
