package initramfs

import (
	"path"
	"regexp"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/vm"
)

// TestBuiltImage checks the shared initramfs `make initramfs` built: nbdboot
// as /init, the tools and shell, and every default module.
func TestBuiltImage(t *testing.T) {
	entries := readArchive(t, vm.Initramfs(t))
	m, err := LoadModules(vm.KernelRoot(t), "")
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := entries["init"]; !ok || readAll(r) != "bin/nbdboot" {
		t.Errorf("/init is not a link to bin/nbdboot")
	}
	want := []string{"bin/nbdboot", "bbin/bb", "bin/sh", "dev/console"}
	for _, tool := range DefaultTools {
		want = append(want, "bbin/"+path.Base(tool))
	}
	set, err := m.Resolve(DefaultModules)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range set {
		want = append(want, path.Join("lib/modules", m.Version, m.dep[name].path))
	}
	for _, f := range []string{"modules.dep", "modules.softdep", "modules.alias", "modules.builtin"} {
		want = append(want, path.Join("lib/modules", m.Version, f))
	}
	for _, name := range want {
		if _, ok := entries[name]; !ok {
			t.Errorf("initramfs lacks %s", name)
		}
	}
}

// TestRescueShell boots the shared initramfs with the shell as the init
// and runs commands from the u-root tools in it.
func TestRescueShell(t *testing.T) {
	// The kernel passes PATH= from its command line to the init.
	m := vm.Start(t, vm.Options{Cmdline: "quiet rdinit=/bin/sh PATH=/bbin:/bin"})
	// Typing before the shell reads the console loses input: wait for
	// the prompt. The console echoes what is typed; only the shell's
	// output has "=2".
	m.ExpectLine(`\$ $`, 60*time.Second)
	if err := m.Send("echo NBDBOOT-SHELL=$((1+1))\n"); err != nil {
		t.Fatal(err)
	}
	m.ExpectLine(`NBDBOOT-SHELL=2$`, 30*time.Second)
	if err := m.Send("ls /lib/modules\n"); err != nil {
		t.Fatal(err)
	}
	// Echo and prompt interleave with the output: "$ 6.1.0-56-amd64".
	m.ExpectLine(`(^|\$ )`+regexp.QuoteMeta(vmKernelVersion(t))+`$`, 30*time.Second)
	if err := m.Send("poweroff\n"); err != nil {
		t.Fatal(err)
	}
	m.WaitExit(30 * time.Second)
}

func vmKernelVersion(t *testing.T) string {
	m, err := LoadModules(vm.KernelRoot(t), "")
	if err != nil {
		t.Fatal(err)
	}
	return m.Version
}
