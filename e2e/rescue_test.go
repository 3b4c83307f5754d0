package e2e

import (
	"testing"

	"github.com/nbdboot/nbdboot/internal/vm"
	"github.com/nbdboot/nbdboot/server"
)

// What the tests type into the rescue shell: the console echoes the
// input as nbdboot-rescue""-ok, only the shell's output reads nbdboot-rescue-ok.
const (
	rescueCommand  = "echo nbdboot-rescue\"\"-ok\n"
	rescueOutput   = `(^|[^"])nbdboot-rescue-ok`
	rescuePoweroff = "/bbin/poweroff\n"
)

// runRescue boots a command line that must fail: the console must show
// lines matching each of before, in order, then a FAILED line matching
// failRE, then the rescue shell, which must run a command typed on the
// serial console and power the guest off.
func runRescue(t *testing.T, cmdline string, before []string, failRE string, serve bool) {
	requireBootTools(t)
	acquireBoot(t)
	addr := vm.ReservePort(t)
	if serve {
		addr = vm.StartServer(t, vm.ServerConfig{Exports: []server.ExportConfig{{Name: exportName, Path: vm.CopyImage(t, "root.ext4")}}}).Addr
	}
	m := vm.Start(t, vm.Options{Cmdline: "quiet " + cmdline, NICs: relay(addr)})
	for _, re := range before {
		m.ExpectLine(re, bootTimeout)
	}
	fail := m.ExpectLine(`nbdboot: .*FAILED: `+failRE+`.*`, bootTimeout)
	t.Logf("console: %s", fail[0])
	m.ExpectLine(`nbdboot: .*rescue: starting a shell`, stepTimeout)
	if err := m.Send(rescueCommand); err != nil {
		t.Fatalf("type into the rescue shell: %v", err)
	}
	m.ExpectLine(rescueOutput, stepTimeout)
	if m.Panicked() != "" {
		t.Fatalf("kernel panicked: %s", m.Panicked())
	}
	// The rescue shell's tools power the guest off (u-root's, by path:
	// the shell's PATH has no /bbin).
	if err := m.Send(rescuePoweroff); err != nil {
		t.Fatalf("type into the rescue shell: %v", err)
	}
	m.WaitExit(exitTimeout)
}

// TestBootWrongExport: the server does not export the name asked for; the
// boot gives up after nbdboot.retry with a message naming the export and
// leaves a working rescue shell on the console.
func TestBootWrongExport(t *testing.T) {
	t.Parallel()
	runRescue(t, "ip=dhcp nbdroot=nbd://10.0.2.100:10809/nosuch nbdboot.retry=3",
		[]string{`nbdboot: .*connect: no server answered yet .*"nosuch".*retrying`},
		`connect: .*"nosuch"`, true)
}

// TestBootMalformedNBDRoot: a malformed nbdroot= gets a message naming
// the parameter, then the rescue shell instead of a kernel panic.
func TestBootMalformedNBDRoot(t *testing.T) {
	t.Parallel()
	runRescue(t, "ip=dhcp nbdroot=nbd:10.0.2.100:99999/root", nil, `cmdline: .*nbdroot=`, false)
}
