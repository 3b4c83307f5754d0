package boot

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// The test binary locks its own executable's mappings (mlock needs
// CAP_IPC_LOCK or a large enough RLIMIT_MEMLOCK: skipped otherwise).
func TestLockMappings(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munlockall() })
	n, err := lockMappings(exe)
	if err != nil {
		t.Skipf("mlock not permitted here: %v", err)
	}
	if n == 0 {
		t.Errorf("no mapping of %s found in /proc/self/maps", exe)
	}
	if n, err := lockMappings("/nonexistent"); n != 0 || err != nil {
		t.Errorf("lockMappings of an unmapped file = %d, %v", n, err)
	}
}
