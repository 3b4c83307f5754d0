package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/vm"
	"github.com/nbdboot/nbdboot/server"
)

// The data export of TestAdminCommands: dataSize bytes of dataFill with
// dataMark at dataMarkAt (one whole hexdump line), and what the guest
// writes at offset 0.
const (
	dataSize   = 64 << 10 // hexdump|grep of 1 MiB takes a minute under TCG
	dataFill   = 0xab
	dataMarkAt = 0x8000
	dataMark   = "NBDBOOT-DATA-32K" // 16 bytes: one hexdump line
	dataWrite  = "nbdboot-admin-wrote\n"
	dataURI    = "nbd://" + guestServer + "/data"
	adminShell = `^\$ $` // gosh's prompt (it does not read PS1)
)

// fullFillLine is a hexdump line of 16 dataFill bytes, without its
// offset: what grep counts and filters out.
var fullFillLine = strings.TrimSpace(strings.Repeat("ab ", 8) + " " + strings.Repeat("ab ", 8))

// makeDataImage writes the data export's image into a temporary file.
func makeDataImage(t *testing.T) string {
	t.Helper()
	b := bytes.Repeat([]byte{dataFill}, dataSize)
	copy(b[dataMarkAt:], dataMark)
	p := filepath.Join(t.TempDir(), "data.img")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatalf("write the data image: %v", err)
	}
	return p
}

// adminGuest types commands into the rd.break=pre-mount shell.
type adminGuest struct {
	t *testing.T
	m *vm.Machine
}

// run waits for the shell's prompt (typed ahead, a command's output
// would follow the next prompt on its line) and types cmd; the caller
// then expects its output. Every pattern the test expects is anchored at
// a line start, where the console's echo of the command has the prompt,
// and ends in \z, not $: vm matches a pattern ending in $ against the
// unterminated last line too (for prompts), which would see output cut
// short.
func (g adminGuest) run(cmd string) {
	g.t.Helper()
	g.m.ExpectLine(adminShell, stepTimeout)
	g.t.Logf("guest after %v: %s", g.m.Since().Round(time.Millisecond), cmd)
	if err := g.m.Send(cmd + "\n"); err != nil {
		g.t.Fatalf("type %q into the shell: %v", cmd, err)
	}
}

// localState runs `nbdboot list` and returns nbd3's row: state, size,
// backend.
func (g adminGuest) localState(dev string) (state, size, backend string) {
	g.t.Helper()
	g.run("/bin/nbdboot list")
	g.m.ExpectLine(`^DEVICE\s+STATE\s+SIZE\s+PID\s+BACKEND`, stepTimeout)
	row := g.m.ExpectLine(`^`+regexp.QuoteMeta(dev)+`\s+(\S+)\s+(\d+)\s+\S+[ \t]*(\S*)\z`, stepTimeout)
	return row[1], row[2], row[3]
}

// TestAdminCommands runs the administrator's subcommands under a real
// kernel, from the rd.break=pre-mount shell (network up, root not
// attached): list a server's exports, attach a second export to
// /dev/nbd3, list the local devices, read the export's bytes back through
// the device, write through it, detach, see the device free and the
// server's connection closed, power off; and attach of a missing export
// fails with a message naming it. The write is checked in the image after
// qemu exited.
func TestAdminCommands(t *testing.T) {
	t.Parallel()
	requireBootTools(t)
	acquireBoot(t)
	data := makeDataImage(t)
	srv := vm.StartServer(t, vm.ServerConfig{Exports: []server.ExportConfig{
		{Name: exportName, Path: vm.CopyImage(t, "root.ext4"), Description: "the root filesystem"},
		{Name: "data", Path: data, Description: "admin test data"},
	}})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", srv.Log.Tail(30))
		}
	})
	m := vm.Start(t, vm.Options{
		Cmdline: "quiet ip=dhcp nbdroot=nbd://" + guestServer + "/" + exportName + " rd.break=pre-mount",
		NICs:    relay(srv.Addr),
	})
	g := adminGuest{t: t, m: m}
	m.ExpectLine(`nbdboot: .*rd.break=pre-mount: `, bootTimeout)
	shellAt := m.Since()

	// 1. The server's exports with their descriptions.
	g.run("/bin/nbdboot list nbd://" + guestServer)
	m.ExpectLine(`^root\s+the root filesystem\z`, stepTimeout)
	m.ExpectLine(`^data\s+admin test data\z`, stepTimeout)

	// 2. Attach data to /dev/nbd3 over two connections (the export
	// allows several): the tool prints the device, the server sees both.
	g.run("/bin/nbdboot attach -connections 2 -timeout 20s " + dataURI + " /dev/nbd3")
	m.ExpectLine(`^/dev/nbd3\z`, stepTimeout)
	waitLog(t, srv, `msg=connected .*export=data|export=data.* msg=connected`, 2)

	// 3. The local devices: nbd3 connected to data, with its size.
	if st, size, be := g.localState("/dev/nbd3"); st != "connected" || size != fmt.Sprint(dataSize) || be != dataURI {
		t.Errorf("nbdboot list: /dev/nbd3 %s size %s backend %q; want connected size %d backend %q", st, size, be, dataSize, dataURI)
	}

	// 4. The bytes through the device: 4095 full lines of the fill,
	// and the one other line is the mark at its offset.
	g.run(`/bbin/hexdump /dev/nbd3 | /bbin/grep -c "` + fullFillLine + `"`)
	if n := m.ExpectLine(`^(\d+)\z`, stepTimeout); n[1] != fmt.Sprint(dataSize/16-1) {
		t.Errorf("/dev/nbd3 has %s hexdump lines of 0x%x bytes, want %d", n[1], dataFill, dataSize/16-1)
	}
	g.run(`/bbin/hexdump /dev/nbd3 | /bbin/grep -v "` + fullFillLine + `"; echo admin-read""-done`)
	mark := fmt.Sprintf("%08x  % x  % x  |%s|", dataMarkAt, dataMark[:8], dataMark[8:], dataMark)
	m.ExpectLine(`^`+regexp.QuoteMeta(mark)+`\z`, stepTimeout)
	m.ExpectLine(`^admin-read-done\z`, stepTimeout)

	// 5. Write through the device (gosh's redirection opens the block
	// device; closing it writes the page back), then sync.
	g.run(`/bbin/echo -n ` + strings.TrimSuffix(dataWrite, "\n") + ` > /dev/nbd3; /bbin/sync; echo admin-write""-done`)
	m.ExpectLine(`^admin-write-done\z`, stepTimeout)

	// 6. Detach: the kernel disconnects, the server sees the client go,
	// and the device is free again.
	g.run(`/bin/nbdboot detach /dev/nbd3; echo admin-detach""-rc=$?`)
	m.ExpectLine(`^admin-detach-rc=0\z`, stepTimeout)
	waitLog(t, srv, `export=data.*msg="(disconnected by client|connection closed)"|msg="(disconnected by client|connection closed)".*export=data`, 2)
	for i := 0; ; i++ {
		st, size, be := g.localState("/dev/nbd3")
		if st == "free" && size == "0" && be == "" {
			break
		}
		if i == 10 {
			t.Errorf("nbdboot list after detach: /dev/nbd3 %s size %s backend %q; want free size 0 no backend", st, size, be)
			break
		}
	}

	// Negative: a missing export gets an error naming it.
	g.run("/bin/nbdboot attach nbd://" + guestServer + "/nosuch /dev/nbd4")
	errLine := m.ExpectLine(`^nbdboot: attach .*\z`, stepTimeout)
	if !strings.Contains(errLine[0], `export "nosuch"`) {
		t.Errorf("attach of a missing export: %q does not name the export", errLine[0])
	}
	t.Logf("guest: %s", errLine[0])
	if st, _, _ := g.localState("/dev/nbd4"); st != "free" {
		t.Errorf("after the failed attach /dev/nbd4 is %s, want free", st)
	}

	// 7. Power off: qemu exits 0.
	g.run("/bbin/poweroff")
	m.WaitExit(exitTimeout)
	t.Logf("admin commands: shell after %v, all done after %v", shellAt.Round(time.Millisecond), m.Since().Round(time.Millisecond))
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	checkDataImage(t, data)
}

// waitLog waits for n server log lines matching pattern.
func waitLog(t *testing.T, srv *vm.Server, pattern string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), serverWait)
	defer cancel()
	if err := srv.Log.WaitMatch(ctx, regexp.MustCompile(pattern), n); err != nil {
		t.Fatalf("server log: %v; log:\n%s", err, srv.Log.Tail(20))
	}
}

// checkDataImage checks the data image after the guest: the guest's
// write at offset 0, everything else as made.
func checkDataImage(t *testing.T, path string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the data image: %v", err)
	}
	want := bytes.Repeat([]byte{dataFill}, dataSize)
	copy(want[dataMarkAt:], dataMark)
	w := strings.TrimSuffix(dataWrite, "\n")
	copy(want, w)
	if len(got) != len(want) {
		t.Fatalf("data image is %d bytes, want %d", len(got), len(want))
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && got[i] == want[i] {
			i++
		}
		end := min(i+32, len(got))
		t.Errorf("data image differs at offset %d: %q, want %q", i, got[i:end], want[i:end])
	}
}
