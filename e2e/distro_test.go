package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/testutil"
	"github.com/nbdboot/nbdboot/internal/vm"
	"github.com/nbdboot/nbdboot/labimage"
	"github.com/nbdboot/nbdboot/server"
)

// The distro tests boot a real distribution: the Debian 12 root with
// systemd that `make distro` debootstraps, turned into images by
// `nbdboot image` (labimage) with a test driver added. systemd under TCG
// is slow: each boot covers several scenarios.

// Deadlines of a systemd boot (TCG on two busy cores).
const (
	distroBoot     = 300 * time.Second // qemu start to systemd's boot finished
	distroShutdown = 180 * time.Second // poweroff to qemu's exit
	distroMemory   = "512M"
)

// nbdtestDriver reports the booted system on the serial console once
// systemd's boot has finished, then runs the commands the test types.
const nbdtestDriver = `#!/bin/sh
state=$(systemctl is-system-running --wait)
failed=$(systemctl list-units --failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')
for u in $failed; do
	systemctl status --no-pager -n 10 "$u" | sed 's/^/NBDTEST-FAILED-UNIT /'
done
echo "NBDTEST-HOST $(hostname)"
echo "NBDTEST-NICS $(ls /sys/class/net | tr '\n' ' ')"
echo "NBDTEST-ROOT $(findmnt -n -o SOURCE,FSTYPE /)"
echo "NBDTEST-MACHINEID $(cat /etc/machine-id)"
echo "NBDTEST-SUPERVISOR $(grep -lx nbdboot /proc/[0-9]*/comm 2>/dev/null | wc -l)"
echo "NBDTEST-NETKEEP $(systemctl is-active nbdboot-netkeep.service) $(grep -h MACAddress /run/systemd/network/01-nbdboot.network)"
echo "NBDTEST-STATE $state failed=[$failed]"
while read -r cmd; do
	case $cmd in
	poweroff) echo NBDTEST-POWEROFF; systemctl poweroff; exit 0 ;;
	esac
done
`

// nbdtestWriter writes, fsyncs and reads back a file every second (the
// page cache dropped in between), reporting each round.
const nbdtestWriter = `#!/bin/sh
mkdir -p /var/lib/nbdtest
f=/var/lib/nbdtest/data
i=0
while :; do
	i=$((i + 1))
	if dd if=/dev/urandom of=$f bs=64k count=4 conv=fsync status=none &&
		a=$(md5sum <$f) && echo 3 >/proc/sys/vm/drop_caches && b=$(md5sum <$f) && [ "$a" = "$b" ]; then
		echo "NBDTEST-WRITE $i ok"
	else
		echo "NBDTEST-WRITE $i FAIL"
	fi
	sleep 1
done
`

const nbdtestUnits = `[Unit]
Description=nbdboot test driver
[Service]
ExecStart=/usr/local/bin/nbdtest
StandardInput=tty
StandardOutput=tty
TTYPath=/dev/ttyS0
[Install]
WantedBy=multi-user.target
`

const nbdtestWriterUnit = `[Unit]
Description=nbdboot test writer
[Service]
ExecStart=/usr/local/bin/nbdtest-writer
StandardOutput=tty
TTYPath=/dev/ttyS0
[Install]
WantedBy=multi-user.target
`

// distroImage makes an image of the distribution root with the test
// driver (and, with writer, the writing service) added, in format.
func distroImage(t *testing.T, format string, writer bool) string {
	t.Helper()
	testutil.RequireTool(t, "mkfs.ext4")
	src := vm.DistroRoot(t)
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	// A hard-link clone (new files only are added to it), or a copy.
	if err := exec.Command("cp", "-a", "-l", src+"/.", tree+"/").Run(); err != nil {
		os.RemoveAll(tree)
		os.Mkdir(tree, 0o755)
		if out, err := exec.Command("cp", "-a", src+"/.", tree+"/").CombinedOutput(); err != nil {
			t.Fatalf("copy %s: %v: %s", src, err, out)
		}
	}
	add := map[string]string{
		"usr/local/bin/nbdtest":                nbdtestDriver,
		"etc/systemd/system/nbdtest.service":   nbdtestUnits,
		"etc/systemd/system/nbdtest-w.service": nbdtestWriterUnit,
		"usr/local/bin/nbdtest-writer":         nbdtestWriter,
	}
	for p, c := range add {
		if err := os.WriteFile(filepath.Join(tree, p), []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		// The driver owns the serial console: no login prompt there.
		"etc/systemd/system/serial-getty@ttyS0.service":              "/dev/null",
		"etc/systemd/system/multi-user.target.wants/nbdtest.service": "/etc/systemd/system/nbdtest.service",
	}
	if writer {
		links["etc/systemd/system/multi-user.target.wants/nbdtest-w.service"] = "/etc/systemd/system/nbdtest-w.service"
	}
	for p, target := range links {
		if err := os.Symlink(target, filepath.Join(tree, p)); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "lab."+format)
	changes, err := labimage.Build(t.Context(), labimage.Options{Dir: tree, Out: img, Format: format})
	if err != nil {
		t.Fatalf("nbdboot image: %v", err)
	}
	t.Logf("nbdboot image: %d changes, %s", len(changes), img)
	os.RemoveAll(tree)
	return img
}

// distroGuest is a booted systemd guest.
type distroGuest struct {
	t *testing.T
	m *vm.Machine
	// Reported by the driver.
	host, nics, root, machineID, netkeep, supervisors string
}

// startDistro boots the image served at the relay and waits for the
// driver's report: systemd's boot finished "running", no failed units.
func startDistro(t *testing.T, o vm.Options) *distroGuest {
	t.Helper()
	o.Memory = distroMemory
	m := vm.Start(t, o)
	g := &distroGuest{t: t, m: m}
	g.host = m.ExpectLine(`^NBDTEST-HOST (.*)`, distroBoot)[1]
	g.nics = m.ExpectLine(`^NBDTEST-NICS (.*)`, stepTimeout)[1]
	g.root = m.ExpectLine(`^NBDTEST-ROOT (.*)`, stepTimeout)[1]
	g.machineID = strings.TrimSpace(m.ExpectLine(`^NBDTEST-MACHINEID (.*)`, stepTimeout)[1])
	g.supervisors = m.ExpectLine(`^NBDTEST-SUPERVISOR (.*)`, stepTimeout)[1]
	g.netkeep = m.ExpectLine(`^NBDTEST-NETKEEP (.*)`, stepTimeout)[1]
	st := m.ExpectLine(`^NBDTEST-STATE (\S+) failed=\[(.*)\]`, stepTimeout)
	t.Logf("after %v: systemd %s; host %s, interfaces %s, root %s, machine-id %s, netkeep %s",
		m.Since().Round(time.Millisecond), st[1], g.host, g.nics, g.root, g.machineID, g.netkeep)
	if st[1] != "running" || strings.TrimSpace(st[2]) != "" {
		t.Errorf("systemd is %s with failed units [%s], want running with none", st[1], st[2])
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(g.machineID) {
		t.Errorf("machine-id %q, want one made at boot", g.machineID)
	}
	// The supervisor names itself (pgrep nbdboot finds it).
	if g.supervisors != "1" {
		t.Errorf("%s processes named nbdboot, want the supervisor alone", g.supervisors)
	}
	if !strings.HasPrefix(g.netkeep, "active MACAddress=52:54:00:12:34:56") {
		t.Errorf("nbdboot-netkeep: %q, want active and the boot NIC's MAC", g.netkeep)
	}
	return g
}

// writes waits for n more successful write rounds of the writer.
func (g *distroGuest) writes(n int, after string) {
	g.t.Helper()
	for range n {
		w := g.m.ExpectLine(`^NBDTEST-WRITE ([0-9]+) (\S+)`, stepTimeout)
		if w[2] != "ok" {
			g.t.Fatalf("write round %s %s (%s)", w[1], w[2], after)
		}
	}
}

// poweroff types poweroff to the driver and waits for qemu to exit 0;
// the console must show no I/O error.
func (g *distroGuest) poweroff() {
	g.t.Helper()
	if err := g.m.Send("poweroff\n"); err != nil {
		g.t.Fatal(err)
	}
	g.m.ExpectLine(`^NBDTEST-POWEROFF`, stepTimeout)
	g.m.WaitExit(distroShutdown)
	lines, err := readLines(g.m.ConsolePath())
	if err != nil {
		g.t.Fatal(err)
	}
	bad := regexp.MustCompile(`I/O error|EXT4-fs error|NBDTEST-WRITE [0-9]+ FAIL|Remounting filesystem read-only|Failed to (start|unmount)|no such network interface`)
	for _, l := range lines {
		if bad.MatchString(l) {
			g.t.Errorf("console: %s", l)
		}
	}
}

// checkCleanExt4 asserts that the image needs no journal replay and
// checks clean: the guest unmounted it at poweroff.
func checkCleanExt4(t *testing.T, img string) {
	t.Helper()
	e2fsck := testutil.RequireTool(t, "e2fsck")
	out, err := exec.Command(e2fsck, "-fn", img).CombinedOutput()
	if err != nil {
		t.Errorf("e2fsck -fn %s (no journal replay first): %v\n%s", img, err, out)
	}
}

// TestDistroSystemd boots the systemd root read-write from its own
// export with the boot kernel: multi-user with no failed unit, a host
// name from DHCP, a service that writes and fsyncs carries on through a
// server kill -9 and restart and a 10 s link loss, and poweroff leaves a
// clean filesystem.
func TestDistroSystemd(t *testing.T) {
	t.Parallel()
	requireBootTools(t)
	img := distroImage(t, labimage.Ext4, true)
	acquireBoot(t)
	addr := vm.ReservePort(t)
	export := server.ExportConfig{Name: exportName, Path: img}
	srv := vm.StartServer(t, vm.ServerConfig{Addr: addr, Exports: []server.ExportConfig{export}})
	nics := []vm.NIC{{User: &vm.UserNet{Hostname: "seat-a", Forwards: []vm.Forward{{Guest: guestServer, Host: addr}}}}}
	g := startDistro(t, vm.Options{Cmdline: "quiet ip=dhcp nbdroot=nbd://10.0.2.100:10809/root rw", NICs: nics})
	if g.host != "seat-a" {
		t.Errorf("host name %q, want seat-a from DHCP", g.host)
	}
	if !strings.HasPrefix(g.root, "/dev/nbd0 ext4") {
		t.Errorf("root %q, want /dev/nbd0 ext4", g.root)
	}
	g.writes(2, "before the server dies")

	if err := srv.Crash(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	t.Logf("after %v: server killed", g.m.Since().Round(time.Millisecond))
	<-time.After(time.Until(down.Add(serverOutage))) // the outage itself
	srv = vm.StartServer(t, vm.ServerConfig{Addr: addr, Exports: []server.ExportConfig{export}})
	g.m.ExpectLine(`supervisor: /dev/nbd0: reconnected to nbd://10\.0\.2\.100:10809/`, stepTimeout)
	g.writes(2, "after the server restart")

	g.m.Monitor("set_link " + vm.NetdevID(0) + " off")
	t.Logf("after %v: link down", g.m.Since().Round(time.Millisecond))
	<-time.After(linkOutage) // the outage itself
	g.m.Monitor("set_link " + vm.NetdevID(0) + " on")
	t.Logf("after %v: link up", g.m.Since().Round(time.Millisecond))
	g.writes(3, "after the link loss")

	g.poweroff()
	if err := srv.Stop(); err != nil {
		t.Error(err)
	}
	checkCleanExt4(t, img)
}

// TestDistroSystemdOverlay boots the root as a read-only squashfs under
// nbdboot.overlay=tmpfs with the second kernel (Debian's backports
// kernel, whose udev renames the NIC while nbdboot keeps it, in most
// boots): multi-user
// with no failed unit, a machine-id made for this boot, and a clean
// poweroff; the image is unchanged.
func TestDistroSystemdOverlay(t *testing.T) {
	t.Parallel()
	requireBootTools(t)
	testutil.RequireTool(t, "mksquashfs")
	kernel, initrd, ok, why := vm.SecondKernel(t)
	if !ok {
		t.Logf("second kernel unavailable (%s): booting the first kernel", strings.TrimSpace(why))
	}
	img := distroImage(t, labimage.Squashfs, false)
	before := fileSHA256(t, img)
	acquireBoot(t)
	srv := vm.StartServer(t, vm.ServerConfig{Addr: "127.0.0.1:0", Exports: []server.ExportConfig{server.ExportConfig{Name: exportName, Path: img, ReadOnly: true}}})
	g := startDistro(t, vm.Options{Kernel: kernel, Initramfs: initrd,
		Cmdline: "quiet ip=dhcp nbdroot=nbd://10.0.2.100:10809/root nbdboot.overlay=tmpfs", NICs: relay(srv.Addr)})
	if !strings.HasPrefix(g.root, "overlay overlay") {
		t.Errorf("root %q, want the tmpfs overlay", g.root)
	}
	// udev on the second kernel renames the running NIC (eth0 -> ens2)
	// in most boots but not in all (seen on 2026-12-03: two of four quiet
	// boots kept eth0, also with a .link file naming it): the rename is
	// logged, not required; netcfg's TestRenewAfterRename renames the
	// link under the lease keeper every time.
	if ok {
		renamed := !strings.Contains(" "+g.nics+" ", " eth0 ")
		t.Logf("second kernel: NIC renamed by udev: %v (interfaces %q)", renamed, g.nics)
	}
	g.poweroff()
	if err := srv.Stop(); err != nil {
		t.Error(err)
	}
	if after := fileSHA256(t, img); after != before {
		t.Error("the read-only image changed")
	}
}

// TestDistroSystemdCOW boots the root twice from a per-client
// copy-on-write export (the guest's own persistent overlay over the
// shared ext4 image): multi-user with no failed unit and a clean poweroff
// each time; the machine-id systemd made at the first boot is kept in the
// client's overlay (the second boot reports it again), and the shared
// base is unchanged.
func TestDistroSystemdCOW(t *testing.T) {
	t.Parallel()
	requireBootTools(t)
	img := distroImage(t, labimage.Ext4, false)
	before := fileSHA256(t, img)
	acquireBoot(t)
	ln := loopbackListener(t)
	srv := vm.StartServer(t, vm.ServerConfig{Listener: ln, StateDir: t.TempDir(), Debug: true, Exports: []server.ExportConfig{{Name: exportName, Path: img, COW: server.COWPersistent}}})
	o := vm.Options{Cmdline: "quiet ip=dhcp nbdroot=nbd://10.0.2.100:10809/root rw", NICs: relay(srv.Addr)}
	var ids []string
	for boot := 1; boot <= 2; boot++ {
		o.Name = fmt.Sprintf("boot%d", boot)
		g := startDistro(t, o)
		if !strings.HasPrefix(g.root, "/dev/nbd0 ext4") {
			t.Errorf("boot %d: root %q, want /dev/nbd0 ext4", boot, g.root)
		}
		ids = append(ids, g.machineID)
		g.poweroff()
	}
	if ids[0] != ids[1] {
		t.Errorf("machine-id %s at the first boot, %s at the second: the client's overlay did not keep it", ids[0], ids[1])
	}
	if err := srv.Stop(); err != nil {
		t.Error(err)
	}
	if after := fileSHA256(t, img); after != before {
		t.Error("the copy-on-write base changed")
	}
}
