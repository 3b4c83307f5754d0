package boot

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// A process started as /proc/self/exe is named "exe" by the kernel, as the
// supervisor is; SetProcessName renames it. The test runs itself that way.
func TestSetProcessName(t *testing.T) {
	if os.Getenv("NBDBOOT_PROCNAME_CHILD") == "1" {
		before, _ := os.ReadFile("/proc/self/comm")
		os.Stdout.WriteString("before=" + strings.TrimSpace(string(before)) + "\n")
		if err := SetProcessName(ProcessName); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile("/proc/self/comm")
		if err != nil {
			t.Fatal(err)
		}
		os.Stdout.WriteString("comm=" + strings.TrimSpace(string(b)) + "\n")
		return
	}
	cmd := &exec.Cmd{
		Path: "/proc/self/exe",
		Args: []string{SupervisorArgv0, "-test.run=^TestSetProcessName$", "-test.count=1"},
		Env:  append(os.Environ(), "NBDBOOT_PROCNAME_CHILD=1"),
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "before=exe\n") || !strings.Contains(string(out), "comm=nbdboot\n") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
