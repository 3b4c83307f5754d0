package netcfg

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nbdboot/nbdboot/internal/testutil"
)

// The namespace tests run in two halves: the parent (the normal go test
// process) builds network namespaces with ip(8) and re-executes the test
// binary inside one of them with `ip netns exec`, where the child half runs
// the test body. Nothing the tests configure is visible outside the
// namespaces, and the namespaces are deleted by t.Cleanup.

const childEnv = "NETCFG_NETNS_CHILD"

// inChild reports whether this process is the re-executed child.
func inChild() bool { return os.Getenv(childEnv) == "1" }

var nsCounter atomic.Int32

// newNetns creates a network namespace deleted at cleanup.
func newNetns(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "ip")
	name := fmt.Sprintf("nbdboot-netcfg-%d-%d", os.Getpid(), nsCounter.Add(1))
	ip(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return name
}

// ip runs ip(8) and fails the test on error.
func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// runChild re-executes the current test inside namespace ns with the extra
// environment and fails the parent if the child fails.
func runChild(t *testing.T, ns string, env ...string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, exe, "-test.run=^"+t.Name()+"$", "-test.v", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(append(os.Environ(), childEnv+"=1"), env...)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("child in netns %s: %v\n%s", ns, err, out)
	}
	t.Logf("child in netns %s:\n%s", ns, out)
}
