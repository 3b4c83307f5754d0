package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/testutil"
	"github.com/nbdboot/nbdboot/internal/vm"
	"github.com/nbdboot/nbdboot/server"
)

// TestImageUpdate: the administrator replaces the served image by a new
// version of the same size (other bytes in the first MiB, which the
// guest reads directly from its device every round) and reloads the
// server while a guest runs on the old one. The guest's connections are
// dropped: its supervisor reconnects with the version it booted
// (NAME@VERSION) and goes on reading the old bytes. The server is then
// killed and restarted, and holds only the new version: the reconnect is
// refused with a message saying so, never served the new bytes. A new
// boot gets the new version.
func TestImageUpdate(t *testing.T) {
	t.Parallel()
	requireBootTools(t)
	tune2fs := testutil.RequireTool(t, "tune2fs")
	acquireBoot(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "lab.img")
	if err := os.Rename(vm.CopyImage(t, "root.ext4"), img); err != nil {
		t.Fatal(err)
	}
	// Version 2: the same filesystem relabelled (the superblock, in the
	// first MiB, changes), built beside it to be renamed over it.
	next := filepath.Join(dir, "lab.img.new")
	if err := os.Rename(vm.CopyImage(t, "root.ext4"), next); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tune2fs, "-L", "nbdroot-v2", next).CombinedOutput(); err != nil {
		t.Fatalf("tune2fs: %v: %s", err, out)
	}
	export := server.ExportConfig{Name: exportName, Path: img, ReadOnly: true}
	addr := vm.ReservePort(t)
	srv := vm.StartServer(t, vm.ServerConfig{Addr: addr, Exports: []server.ExportConfig{export}})
	v1 := pinnedVersion(t, srv)
	cmdline := "ip=dhcp nbdroot=nbd://10.0.2.100:10809/root nbdboot.overlay=tmpfs nbdtest.readdev=/dev/nbd0"
	g := startLoopGuest(t, cmdline, relay(addr))
	if got := g.m.ExpectLine(`supervisor: resident for /dev/nbd0 \(nbd://10\.0\.2\.100:10809/root@([0-9a-f]+),`, bootTimeout)[1]; got != v1 {
		t.Fatalf("the guest pinned version %s, the server serves %s", got, v1)
	}
	g.m.ExpectLine(`NBDBOOT-ROOT-LOOP 2 ok`, bootTimeout)

	// The update: rename, reload.
	if err := os.Rename(next, img); err != nil {
		t.Fatal(err)
	}
	if err := srv.Reload([]server.ExportConfig{export}); err != nil {
		t.Fatal(err)
	}
	v2 := pinnedVersion(t, srv)
	if v2 == v1 {
		t.Fatalf("version %s unchanged by the replacement", v1)
	}
	t.Logf("after %v: image replaced and reloaded (version %s -> %s); dropping the guest's connections", g.m.Since().Round(time.Millisecond), v1, v2)
	srv.DropConnections()
	back := time.Now()
	g.m.ExpectLine(`supervisor: /dev/nbd0: reconnected to nbd://10\.0\.2\.100:10809/root@`+v1+` `, stepTimeout)
	g.resumed(back, "reload") // a round compares the device's first MiB with the first round's

	// A restarted server has only the new file: the old version is refused.
	if err := srv.Crash(); err != nil {
		t.Fatal(err)
	}
	srv = vm.StartServer(t, vm.ServerConfig{Addr: addr, Exports: []server.ExportConfig{export}})
	g.m.ExpectLine(`supervisor: /dev/nbd0: reconnect attempt [0-9]+ .*image version `+v1+` is no longer served`, 2*stepTimeout)
	t.Logf("after %v: the restarted server refused the old version, as it must", g.m.Since().Round(time.Millisecond))
	for _, l := range g.consoleLines("NBDBOOT-ROOT-LOOP ") {
		if regexp.MustCompile(`FAIL`).MatchString(l) {
			t.Errorf("console: %s", l)
		}
	}
	g.m.Kill()

	// A new boot gets the new version.
	g2 := startLoopGuest(t, cmdline, relay(addr))
	if got := g2.m.ExpectLine(`supervisor: resident for /dev/nbd0 \(nbd://10\.0\.2\.100:10809/root@([0-9a-f]+),`, bootTimeout)[1]; got != v2 {
		t.Errorf("the new boot pinned version %s, want the new %s", got, v2)
	}
	g2.m.ExpectLine(`NBDBOOT-ROOT-LOOP 2 ok`, bootTimeout)
	g2.finish()
}

// pinnedVersion is the version the server names its export with now.
func pinnedVersion(t *testing.T, srv *vm.Server) string {
	t.Helper()
	info, err := srv.Export(exportName)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^` + exportName + `@([0-9a-f]{12})$`).FindStringSubmatch(info.Canonical)
	if m == nil {
		t.Fatalf("canonical name %q, want %s@VERSION", info.Canonical, exportName)
	}
	return m[1]
}
