package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/boot"
	"github.com/nbdboot/nbdboot/bootcfg"
	"github.com/nbdboot/nbdboot/internal/testutil"
	"github.com/nbdboot/nbdboot/nbdnl"
	"github.com/nbdboot/nbdboot/protocol"
	"golang.org/x/sys/unix"
)

func TestParseAttachArgs(t *testing.T) {
	three := uint32(3)
	tests := []struct {
		args    []string
		want    attachArgs
		wantErr string
	}{
		{args: []string{"nbd://srv/root"}, want: attachArgs{uri: bootcfg.Address{Server: bootcfg.Server{Host: "srv", Port: 10809}, Export: "root"}, connections: 1}},
		{args: []string{"-connections", "4", "-timeout", "30s", "-deadconn", "2m", "nbd://[::1]:7000/e", "/dev/nbd3"},
			want: attachArgs{uri: bootcfg.Address{Server: bootcfg.Server{Host: "::1", Port: 7000}, Export: "e"}, index: &three, connections: 4, timeout: 30 * time.Second, deadConn: 2 * time.Minute}},
		{args: nil, wantErr: "got 0 arguments"},
		{args: []string{"nbd://srv/root", "/dev/nbd0", "extra"}, wantErr: "got 3 arguments"},
		{args: []string{"srv/root"}, wantErr: "scheme"},
		{args: []string{"nbd://srv/root", "/dev/sda"}, wantErr: "/dev/sda"},
		{args: []string{"-connections", "0", "nbd://srv/root"}, wantErr: "-connections 0"},
		{args: []string{"-connections", "1000", "nbd://srv/root"}, wantErr: "-connections 1000"},
		{args: []string{"-timeout", "-1s", "nbd://srv/root"}, wantErr: "negative"},
		{args: []string{"-timeout", "soon", "nbd://srv/root"}, wantErr: "-timeout"},
		{args: []string{"-bogus", "nbd://srv/root"}, wantErr: "bogus"},
	}
	for _, tt := range tests {
		got, err := parseAttachArgs(tt.args)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseAttachArgs(%q) error = %v, want one mentioning %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseAttachArgs(%q): %v", tt.args, err)
			continue
		}
		if got.uri != tt.want.uri || got.connections != tt.want.connections || got.timeout != tt.want.timeout ||
			got.deadConn != tt.want.deadConn || (got.index == nil) != (tt.want.index == nil) ||
			(got.index != nil && *got.index != *tt.want.index) {
			t.Errorf("parseAttachArgs(%q) = %+v, want %+v", tt.args, got, tt.want)
		}
	}
}

func TestAttachConfig(t *testing.T) {
	a := attachArgs{uri: bootcfg.Address{Server: bootcfg.Server{Host: "srv", Port: 10809}, Export: "root"}, timeout: 30 * time.Second, deadConn: time.Minute}
	socks := []*os.File{os.Stdin}
	tests := []struct {
		name          string
		info          protocol.ExportInfo
		wantBS        uint64
		wantSize      uint64
		wantErrSubstr string
	}{
		{name: "no block size info", info: protocol.ExportInfo{Size: 1 << 30, Flags: 0x3}, wantBS: 512, wantSize: 1 << 30},
		{name: "preferred 4096 is not forced", info: protocol.ExportInfo{Size: 1 << 30, MinBlock: 1, PrefBlock: 4096}, wantBS: 512, wantSize: 1 << 30},
		{name: "min 4096", info: protocol.ExportInfo{Size: 1 << 30, MinBlock: 4096}, wantBS: 4096, wantSize: 1 << 30},
		{name: "odd size rounded down", info: protocol.ExportInfo{Size: 1000000}, wantBS: 512, wantSize: 999936},
		{name: "smaller than a block", info: protocol.ExportInfo{Name: "tiny", Size: 100}, wantErrSubstr: "less than one 512-byte block"},
		{name: "min above page", info: protocol.ExportInfo{Size: 1 << 30, MinBlock: 65536}, wantErrSubstr: "page size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := attachConfig(a, tt.info, socks, 4096)
			if tt.wantErrSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrSubstr) {
					t.Fatalf("attachConfig error = %v, want %q", err, tt.wantErrSubstr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.BlockSize != tt.wantBS || cfg.Size != tt.wantSize || cfg.ServerFlags != uint64(tt.info.Flags) ||
				cfg.Timeout != a.timeout || cfg.DeadConnTimeout != a.deadConn || cfg.BackendID != "nbd://srv:10809/root" ||
				len(cfg.Sockets) != 1 || cfg.Index != nil {
				t.Errorf("attachConfig = %+v", cfg)
			}
		})
	}
}

// nbdkitArgs serves two named exports with a description, from memory.
var nbdkitArgs = []string{"--filter=exportname", "memory", "1M",
	"exportname=root", "exportname=data", "exportname-list=explicit", "exportdesc=fixed:test disk"}

// serveNbdkit runs `nbdkit -s` on one end of a connection: a third-party
// server speaking over the file it is given as stdin and stdout.
func serveNbdkit(t *testing.T, conn *os.File, args ...string) *exec.Cmd {
	t.Helper()
	if args == nil {
		args = nbdkitArgs
	}
	cmd := exec.Command("nbdkit", append([]string{"-s", "--exit-with-parent"}, args...)...)
	cmd.Stdin, cmd.Stdout = conn, conn
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("nbdkit stderr: %s", stderr.String())
		}
	})
	return cmd
}

// nbdkitPair returns our end of a socket pair whose other end nbdkit
// serves.
func nbdkitPair(t *testing.T, args ...string) net.Conn {
	t.Helper()
	testutil.RequireTool(t, "nbdkit")
	fds, err := socketpair()
	if err != nil {
		t.Fatal(err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "ours"), os.NewFile(uintptr(fds[1]), "nbdkit")
	serveNbdkit(t, theirs, args...)
	theirs.Close()
	c, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestListExportsNbdkit(t *testing.T) {
	c := nbdkitPair(t)
	var out bytes.Buffer
	if err := listExports(&out, c, "nbdkit"); err != nil {
		t.Fatal(err)
	}
	want := "root  test disk\ndata  test disk\n"
	if out.String() != want {
		t.Errorf("listExports printed\n%q\nwant\n%q", out.String(), want)
	}
}

// TestListExportsEscapes: names and descriptions a server chose are
// shown so that they can neither forge rows nor drive the terminal.
func TestListExportsEscapes(t *testing.T) {
	c := nbdkitPair(t, "--filter=exportname", "memory", "1M",
		"exportname=pc1\tfake", "exportname=\x1b[2J", "exportname-list=explicit", "exportdesc=fixed:two\nlines")
	var out bytes.Buffer
	if err := listExports(&out, c, "nbdkit"); err != nil {
		t.Fatal(err)
	}
	want := "\"pc1\\tfake\"  \"two\\nlines\"\n\"\\x1b[2J\"    \"two\\nlines\"\n"
	if out.String() != want {
		t.Errorf("listExports printed\n%q\nwant\n%q", out.String(), want)
	}
}

func TestHandshakeNbdkit(t *testing.T) {
	c := nbdkitPair(t)
	ctx, cancel := context.WithTimeout(t.Context(), adminTimeout)
	defer cancel()
	n, err := boot.Negotiate(ctx, c, boot.NegotiateRequest{Export: "data"})
	if err != nil {
		t.Fatal(err)
	}
	if n.Size != 1<<20 || n.Flags&protocol.FlagCanMultiConn == 0 {
		t.Errorf("negotiated %+v, want 1 MiB, multi-conn", n)
	}
}

// TestDialExportNbdkit runs dialExport against a loopback listener whose
// connections are served by nbdkit, and checks the sockets it returns.
func TestDialExportNbdkit(t *testing.T) {
	testutil.RequireTool(t, "nbdkit")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 3)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f, err := c.(*net.TCPConn).File()
			c.Close()
			if err != nil {
				served <- err
				return
			}
			served <- startNbdkit(f)
			f.Close()
		}
	}()
	u, err := bootcfg.ParseURI("nbd://" + ln.Addr().String() + "/root")
	if err != nil {
		t.Fatal(err)
	}
	var warn bytes.Buffer
	info, socks, err := dialExport(t.Context(), u, 3, &warn)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(socks)
	if len(socks) != 3 || info.Size != 1<<20 || warn.Len() != 0 {
		t.Errorf("dialExport = %+v, %d sockets, warning %q", info, len(socks), warn.String())
	}
	for range 3 {
		if err := <-served; err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := attachConfig(attachArgs{uri: u}, info, socks, os.Getpagesize())
	if err != nil || cfg.Size != 1<<20 || cfg.ServerFlags&nbdnl.ServerFlagCanMultiConn == 0 {
		t.Errorf("attachConfig = %+v, %v", cfg, err)
	}
}

// startNbdkit serves one accepted connection with nbdkit -s; the process
// is reaped in the background (it exits when the client hangs up, or with
// the test binary).
func startNbdkit(conn *os.File) error {
	cmd := exec.Command("nbdkit", append([]string{"-s", "--exit-with-parent"}, nbdkitArgs...)...)
	cmd.Stdin, cmd.Stdout = conn, conn
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	return nil
}

func TestListLocalFromSysfs(t *testing.T) {
	root := t.TempDir()
	sys := nbdnl.Sys{Block: filepath.Join(root, "block"), Dev: filepath.Join(root, "dev")}
	write := func(p, s string) {
		t.Helper()
		p = filepath.Join(sys.Block, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("nbd0/size", "2048\n")
	write("nbd0/pid", "321\n")
	write("nbd0/backend", "nbd://srv:10809/root\n")
	d := localDevice{index: 0}
	fillSysInfo(sys, &d)
	if d != (localDevice{index: 0, connected: true, pid: 321, backend: "nbd://srv:10809/root", size: 1 << 20}) {
		t.Errorf("fillSysInfo = %+v", d)
	}
	d = localDevice{index: 1}
	fillSysInfo(sys, &d)
	if d != (localDevice{index: 1}) {
		t.Errorf("fillSysInfo(missing) = %+v", d)
	}
}

func TestDetachListArgs(t *testing.T) {
	for _, tt := range []struct {
		run  func([]string) error
		args []string
		want string
	}{
		{runDetach, nil, "want one /dev/nbdN"},
		{runDetach, []string{"/dev/sda"}, "/dev/sda"},
		{runList, []string{"a", "b"}, "got 2 arguments"},
		{runList, []string{"nbd://srv/root"}, "give only nbd://HOST[:PORT]"},
		{runList, []string{"srv"}, "scheme"},
	} {
		if err := tt.run(tt.args); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error = %v, want one mentioning %q", tt.args, err, tt.want)
		}
	}
}

func socketpair() ([2]int, error) {
	return unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
}
