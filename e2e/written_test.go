package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/nbdboot/nbdboot/internal/vm"
)

// writtenFile is /written-by-guest as the root's init writes it.
func writtenFile(id string) string {
	return fmt.Sprintf("id=%s\nvalue=%s\n", id, vm.RootValue(id))
}

// readGuestFile reads a file from the ext4 filesystem in image (at byte
// offset off, for a partition) with debugfs, without mounting it.
func readGuestFile(image string, off int64, path string) (string, error) {
	dev := image
	if off != 0 {
		dev = fmt.Sprintf("%s?offset=%d", image, off)
	}
	cmd := exec.Command("debugfs", "-R", "cat "+path, dev)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("debugfs cat %s in %s: %w: %s", path, dev, err, stderr.String())
	}
	// debugfs prints its banner on stderr and exits 0 for a missing file;
	// the error is on stderr too.
	if strings.Contains(stderr.String(), "File not found") {
		return "", fmt.Errorf("debugfs cat %s in %s: file not found", path, dev)
	}
	return string(out), nil
}

// checkWritten asserts that the guest's write reached the server's image.
func checkWritten(t *testing.T, image string, off int64, id string) {
	t.Helper()
	got, err := readGuestFile(image, off, "/written-by-guest")
	if err != nil {
		t.Errorf("the guest's write is not in the server's image: %v", err)
		return
	}
	if want := writtenFile(id); got != want {
		t.Errorf("/written-by-guest in %s = %q, want %q", image, got, want)
	}
}

// TestWrittenFile pins the file the root's init writes, as the shell
// computes it: printf 'nbdboot:%s' abc | sha256sum | cut -c1-16.
// checkUnchanged asserts that a read-only export's image still equals
// the build's.
func checkUnchanged(t *testing.T, image, orig string) {
	t.Helper()
	a, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(orig)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("read-only export %s changed (differs from %s)", image, orig)
	}
}

func TestWrittenFile(t *testing.T) {
	if got, want := writtenFile("abc"), "id=abc\nvalue=1b17e1d0548daf39\n"; got != want {
		t.Errorf("writtenFile(abc) = %q, want %q", got, want)
	}
}
