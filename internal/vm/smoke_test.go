package vm

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/initramfs"
)

// smokeInitramfs builds an initramfs whose /init is ./testinit, with
// modules from kernelRoot if given.
func smokeInitramfs(t *testing.T, kernelRoot string, modules ...string) string {
	t.Helper()
	c := initramfs.Config{
		Output:      filepath.Join(t.TempDir(), "smoke.cpio.gz"),
		Init:        "github.com/nbdboot/nbdboot/internal/vm/testinit",
		KernelRoot:  kernelRoot,
		Modules:     modules,
		Compression: initramfs.Gzip,
	}
	if _, err := initramfs.Build(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c.Output
}

// TestSmoke boots the kernel with an initramfs whose /init prints a marker,
// echoes a console line, and powers off; the monitor answers meanwhile.
func TestSmoke(t *testing.T) {
	kernel := Kernel(t)
	m := Start(t, Options{
		Kernel:    kernel,
		Initramfs: smokeInitramfs(t, ""),
		Cmdline:   "quiet testinit.echo",
		NICs:      []NIC{{User: &UserNet{}}},
	})
	match := m.ExpectLine(`NBDBOOT-VM-SMOKE ok pid=(\d+) uptime=([0-9.]+)`, 60*time.Second)
	t.Logf("marker %v after qemu start (guest uptime %ss)", m.Since().Round(time.Millisecond), match[2])
	if match[1] != "1" {
		t.Errorf("init ran as pid %s, want 1", match[1])
	}
	out, err := m.Monitor("info network")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, NetdevID(0)) || !strings.Contains(out, "restrict=on") {
		t.Errorf("info network = %q, want %s with restrict=on", out, NetdevID(0))
	}
	if _, err := m.Monitor("set_link " + NetdevID(0) + " off"); err != nil {
		t.Fatal(err)
	}
	if err := m.Send("hello guest\n"); err != nil {
		t.Fatal(err)
	}
	m.ExpectLine(`^NBDBOOT-VM-ECHO hello guest$`, 30*time.Second)
	m.WaitExit(30 * time.Second)
}
