package e2e

import (
	"os"
	"testing"

	"github.com/nbdboot/nbdboot/internal/vm"
)

// TestMain runs the tests through vm.Main, which removes the binaries
// vm.GoBinary built for them.
func TestMain(m *testing.M) { os.Exit(vm.Main(m)) }
