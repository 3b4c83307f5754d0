package e2e

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/nbdboot/nbdboot/internal/vm"
	"github.com/nbdboot/nbdboot/server"
)

// TestBootIoctl: nbdboot.attach=ioctl attaches the root with the ioctls
// instead of netlink (the fallback for kernels without the nbd netlink
// family), held by a keeper process across switch_root: the attach line
// says so, the root's init runs and writes, the supervisor says it cannot
// reconnect such a device, the guest powers off (qemu exits 0), and the
// write is in the image.
func TestBootIoctl(t *testing.T) {
	t.Parallel()
	requireBootTools(t)
	acquireBoot(t)
	img := vm.CopyImage(t, "root.ext4")
	srv := vm.StartServer(t, vm.ServerConfig{Addr: "127.0.0.1:0", Exports: []server.ExportConfig{server.ExportConfig{Name: exportName, Path: img}}})
	id := newID(t)
	cmdline := "quiet ip=dhcp nbdroot=nbd://10.0.2.100:10809/root nbdboot.attach=ioctl rw nbdtest.id=" + id
	m := vm.Start(t, vm.Options{Cmdline: cmdline, NICs: relay(srv.Addr)})
	att := m.ExpectLine(`nbdboot: .*attach: \S+ on (/dev/nbd[0-9]+), 1 connection.* via ioctl \(nbdboot\.attach=ioctl\)`, bootTimeout)
	dev := regexp.QuoteMeta(att[1])
	m.ExpectLine(`nbdboot: .*switch_root: .* on `+dev, stepTimeout)
	root := m.ExpectLine(`NBDBOOT-ROOT-INIT ok id=`+regexp.QuoteMeta(id)+` mode=write root=(\S+) (\S+) (\S+)`, stepTimeout)
	if root[1] != att[1] || root[2] != "ext4" || !hasOpt(root[3], "rw") {
		t.Errorf("root's init reports root %s %s %s; want %s ext4 rw", root[1], root[2], root[3], att[1])
	}
	m.ExpectLine(`NBDBOOT-ROOT-WROTE id=`+regexp.QuoteMeta(id)+` value=`+vm.RootValue(id), stepTimeout)
	checkConns(t, srv, 1)
	m.WaitExit(exitTimeout)
	if err := srv.Stop(); err != nil {
		t.Error(err)
	}
	checkWritten(t, img, 0, id)
	// The keeper and the supervisor log asynchronously to PID 1: their
	// lines are looked for in the whole console.
	lines, err := readLines(m.ConsolePath())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ioctl keeper: pid ",
		" holds " + att[1] + " (1 socket(s))",
		"supervisor: " + att[1] + " is attached with ioctls and held by the keeper process: reconnect unavailable",
	} {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, want) }) {
			t.Errorf("console has no line with %q", want)
		}
	}
}
