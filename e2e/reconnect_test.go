package e2e

import (
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/vm"
	"github.com/nbdboot/nbdboot/server"
)

// TestBootServerRestart: the server dies while the booted guest does I/O
// on its root and comes back on the same address; nbdboot's resident
// supervisor must reconnect (LINK_DEAD, then RECONFIGURE) and the guest's
// read-after-write loop must finish without an error.
func TestBootServerRestart(t *testing.T) {
	t.Parallel()
	requireBootTools(t)
	acquireBoot(t)
	img := vm.CopyImage(t, "root.ext4")
	export := server.ExportConfig{Name: exportName, Path: img}
	addr := reservePort(t)
	srv := startServer(t, addr, export)
	cmdline := "quiet ip=dhcp nbdroot=nbd://10.0.2.100:10809/root rw nbdtest.mode=loop nbdtest.loops=6 nbdtest.id=" + newID(t)
	m := vm.Start(t, vm.Options{Cmdline: cmdline, NICs: relay(addr)})
	m.ExpectLine(`NBDBOOT-ROOT-LOOP 1 ok`, bootTimeout)
	if err := srv.Crash(); err != nil {
		t.Fatal(err)
	}
	m.ExpectLine(`supervisor: link dead on /dev/nbd0`, stepTimeout)
	next := m.ExpectLine(`supervisor: (reconnect not available|.*)`, stepTimeout)
	if next[1] == "reconnect not available" {
		t.Skipf("the supervisor cannot reconnect yet: %s", next[0])
	}
	t.Logf("after %v: %s; restarting the server on %s", m.Since().Round(time.Millisecond), next[0], addr)
	srv = startServer(t, addr, export)
	done := m.ExpectLine(`NBDBOOT-ROOT-LOOP-DONE (ok|FAIL)`, bootTimeout)
	if done[1] != "ok" {
		t.Errorf("the guest's I/O loop failed across the restart: %s", done[0])
	}
	m.WaitExit(exitTimeout)
	if n := srv.Log.Count(logConnected); n < 1 {
		t.Errorf("the restarted server saw no connection; log:\n%s", srv.Log.Tail(20))
	}
}
