package vm

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"testing"
)

// goBinaries holds the binaries GoBinary built, by package, for the life
// of the test process; Main removes them at its end.
var goBinaries struct {
	sync.Mutex
	main bool // Main runs the tests
	dir  string
	path map[string]string
}

// Main runs the tests of a package that uses GoBinary, then removes the
// binaries GoBinary built, and returns the exit code for os.Exit:
//
//	func TestMain(m *testing.M) { os.Exit(vm.Main(m)) }
func Main(m *testing.M) int {
	goBinaries.Lock()
	goBinaries.main = true
	goBinaries.Unlock()
	code := m.Run()
	goBinaries.Lock()
	defer goBinaries.Unlock()
	if goBinaries.dir != "" {
		if err := os.RemoveAll(goBinaries.dir); err != nil {
			fmt.Fprintf(os.Stderr, "remove test binaries: %v\n", err)
		}
		goBinaries.dir, goBinaries.path = "", nil
	}
	return code
}

// GoBinary builds the command in package pkg (an import path, e.g.
// "github.com/nbdboot/nbdboot/cmd/nbdserve") once per test process and
// returns its path, for tests that run it as a separate process (in a
// lab's namespace with Lab.Command). The binaries, one per package, stay
// in one directory under the system's temporary directory for every test
// of the process; Main, which the package's TestMain must call, removes it
// when the tests end.
func GoBinary(t testing.TB, pkg string) string {
	t.Helper()
	goBinaries.Lock()
	defer goBinaries.Unlock()
	if !goBinaries.main {
		t.Fatal("vm.GoBinary: the test package's TestMain must run its tests with vm.Main, which removes the binaries")
	}
	if p, ok := goBinaries.path[pkg]; ok {
		return p
	}
	if goBinaries.dir == "" {
		dir, err := os.MkdirTemp("", "nbdboot-bin-")
		if err != nil {
			t.Fatal(err)
		}
		goBinaries.dir = dir
		goBinaries.path = map[string]string{}
	}
	out := filepath.Join(goBinaries.dir, path.Base(pkg))
	if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	goBinaries.path[pkg] = out
	return out
}
