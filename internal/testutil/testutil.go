// Package testutil holds small helpers shared by the project's tests.
package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// Strict reports whether missing test prerequisites must fail the test
// rather than skip it. `make test` and CI set NBDBOOT_STRICT=1.
func Strict() bool { return os.Getenv("NBDBOOT_STRICT") == "1" }

// RequireTool returns the path of an external program a test needs. Under
// `make test` a missing tool fails the test; in a plain `go test` it skips.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "tool %s not installed (run `make deps`): %v", name, err)
	}
	return p
}

// RequireRoot fails (strict) or skips a test that needs root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "test needs root")
	}
}

// Missing fails the test under NBDBOOT_STRICT=1 and skips it otherwise.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if Strict() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}
