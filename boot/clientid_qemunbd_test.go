package boot

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/bootcfg"
	"github.com/nbdboot/nbdboot/internal/testutil"
)

// unixDialer dials one unix socket whatever the address.
type unixDialer string

func (d unixDialer) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	var nd net.Dialer
	return nd.DialContext(ctx, "unix", string(d))
}

// TestClientIDFallbackQemuNBD: a server nobody here wrote (qemu-nbd,
// serving one export named "root") answers NAME/MAC with "unknown
// export"; the boot's connect step, with the real handshake, falls back
// to the plain NAME and gets the export.
func TestClientIDFallbackQemuNBD(t *testing.T) {
	qemuNBD := testutil.RequireTool(t, "qemu-nbd")
	dir := t.TempDir()
	img, sock := filepath.Join(dir, "base.img"), filepath.Join(dir, "nbd.sock")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(qemuNBD, "-f", "raw", "-x", "root", "--persistent", "-k", sock, img)
	var stderr testutil.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})

	var log testutil.Buffer
	clock := SystemClock()
	target := bootcfg.Address{Server: bootcfg.Server{Host: "qemu-nbd", Port: 10809}, Export: "root"}
	b := &booter{
		env: &Env{Dialer: unixDialer(sock), Negotiate: Negotiate, Clock: clock},
		log: NewLogger(&log, clock),
		// connect retries until qemu-nbd listens.
		cfg:  &bootcfg.Config{Retry: 30 * time.Second},
		root: bootcfg.Boot{Target: bootcfg.Target{Servers: []bootcfg.Server{target.Server}, Export: target.Export}, Connections: 1},
		net:  NetInfo{Interface: "eth0", MAC: "52:54:00:12:34:56"},
	}
	s, err := b.connect(t.Context(), b.root.Addresses())
	if err != nil {
		t.Fatalf("connect: %v; log:\n%s\nqemu-nbd:\n%s", err, log.String(), stderr.String())
	}
	defer s.Close()
	if s.Target.Export != "root" || s.Export.Size != 1<<20 || len(s.Conns) != 1 {
		t.Errorf("session: export %q, %d bytes, %d connections; want root, %d bytes, 1", s.Target.Export, s.Export.Size, len(s.Conns), 1<<20)
	}
	if want := `does not know export "root/52:54:00:12:34:56"`; strings.Count(log.String(), want) != 1 {
		t.Errorf("log does not tell of the fallback once (%q):\n%s", want, log.String())
	}
}
