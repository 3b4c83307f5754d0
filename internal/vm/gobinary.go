package vm

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"testing"
)

// goBinaries holds the binaries GoBinary built, by package, for the life
// of the test process.
var goBinaries struct {
	sync.Mutex
	dir  string
	path map[string]string
}

// GoBinary builds the command in package pkg (an import path, e.g.
// "github.com/nbdboot/nbdboot/cmd/nbdserve") once per test process and
// returns its path, for tests that run it as a separate process (in a
// lab's namespace with Lab.Command). The binaries are left in the
// system's temporary directory, one per package.
func GoBinary(t testing.TB, pkg string) string {
	t.Helper()
	goBinaries.Lock()
	defer goBinaries.Unlock()
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
