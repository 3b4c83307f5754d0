package e2e

import (
	"strconv"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/vm"
	"github.com/nbdboot/nbdboot/server"
)

// multiConns is the connections TestReconnectMultiConn asks for.
const multiConns = 2

// TestReconnectMultiConn: TestReconnectServerRestart with two
// connections (nbdboot.connections=2). Both sockets die with the server;
// the supervisor must fill both again after the 5 s outage: the attach
// and resident lines say 2 connections, the reconnect line 2 sockets,
// the restarted server sees exactly 2 connections, and the guest's loop
// finishes with no error on a read-write root with a clean filesystem.
func TestReconnectMultiConn(t *testing.T) {
	t.Parallel()
	requireBootTools(t)
	acquireBoot(t)
	img := vm.CopyImage(t, "root.ext4")
	export := server.ExportConfig{Name: exportName, Path: img}
	addr := vm.ReservePort(t)
	srv := vm.StartServer(t, vm.ServerConfig{Addr: addr, Exports: []server.ExportConfig{export}})
	n := strconv.Itoa(multiConns)
	g := startLoopGuest(t, "ip=dhcp nbdroot=nbd://10.0.2.100:10809/root nbdboot.connections="+n, relay(addr))

	att := g.m.ExpectLine(`nbdboot: .*attach: \S+ on (/dev/nbd[0-9]+), ([0-9]+) connection`, bootTimeout)
	if att[1] != "/dev/nbd0" || att[2] != n {
		t.Errorf("nbdboot attached %s with %s connection(s), want /dev/nbd0 with %s", att[1], att[2], n)
	}
	g.m.ExpectLine(`supervisor: resident for /dev/nbd0 \(\S+, `+n+` connection\(s\),`, stepTimeout)
	g.m.ExpectLine(`NBDBOOT-ROOT-LOOP 3 ok`, bootTimeout)
	checkConns(t, srv, multiConns)
	if err := srv.Crash(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	t.Logf("after %v: server killed", g.m.Since().Round(time.Millisecond))
	g.m.ExpectLine(`nbdboot: .*supervisor: /dev/nbd0: connection to \S+ lost \(LINK_DEAD\)`, stepTimeout)
	<-time.After(time.Until(down.Add(serverOutage))) // the outage itself
	srv = vm.StartServer(t, vm.ServerConfig{Addr: addr, Exports: []server.ExportConfig{export}})
	back := time.Now()
	t.Logf("after %v: server restarted (down %v)", g.m.Since().Round(time.Millisecond), back.Sub(down).Round(time.Millisecond))
	rec := g.m.ExpectLine(`supervisor: /dev/nbd0: reconnected to nbd://10\.0\.2\.100:10809/\S+ .*\(([0-9]+) attempt\(s\), ([0-9]+) socket\(s\)\)`, stepTimeout)
	if rec[2] != n {
		t.Errorf("the supervisor reconnected %s socket(s), want %s: %s", rec[2], n, rec[0])
	}
	// The new server must see both sockets before the guest goes on.
	checkConns(t, srv, multiConns)
	g.resumed(back, "server restart")
	g.finish()
	// One loss, one reconnect: a late LINK_DEAD of the second socket must
	// not cost a second round of connections.
	if l := g.consoleLines("supervisor: /dev/nbd0: reconnected to"); len(l) != 1 {
		t.Errorf("the supervisor reconnected %d times, want 1: %q", len(l), l)
	}
	if got := srv.Log.Count(vm.LogConnected); got != multiConns {
		t.Errorf("the restarted server saw %d connections, want %d; log:\n%s", got, multiConns, srv.Log.Tail(20))
	}
	if err := srv.Stop(); err != nil {
		t.Error(err)
	}
	checkFsck(t, img)
}
