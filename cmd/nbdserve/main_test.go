package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/tomlx"
	"github.com/nbdboot/nbdboot/protocol"
	"github.com/nbdboot/nbdboot/pxe"
	"github.com/nbdboot/nbdboot/server"
)

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "a.img")
	os.WriteFile(img, make([]byte, 1<<20), 0o644)
	cfg := filepath.Join(dir, "c.toml")
	os.WriteFile(cfg, []byte("[[export]]\nname = \"a\"\npath = \""+img+"\"\nbogus = 1\n"), 0o644)
	for _, tt := range []struct {
		args    []string
		wantErr string
	}{
		{nil, "no exports: give NAME=PATH arguments or [[export]] in -config"},
		{[]string{"a=" + filepath.Join(dir, "missing.img")}, `export "a": open ` + filepath.Join(dir, "missing.img") + ": no such file or directory"},
		{[]string{"a=" + img, "a=" + img}, `export "a": defined twice`},
		{[]string{"a=" + img + ",rw"}, `export "a": unknown option "rw" (known: ro, cow[=persistent], grace=DURATION, quota=SIZE, desc=TEXT)`},
		{[]string{"noequals"}, `export "noequals": want NAME=PATH[,ro][,cow[=persistent]][,grace=DURATION][,quota=SIZE][,desc=TEXT]`},
		{[]string{"-config", cfg}, "config " + cfg + ": unknown key export.bogus"},
		{[]string{"-max-inflight", "0", "a=" + img}, "limits.max_inflight: 0, want >= 1"},
		{[]string{"-listen", "127.0.0.1:99999", "a=" + img}, "listen: "},
		{[]string{"-nosuchflag"}, "flag provided but not defined: -nosuchflag"},
		{[]string{"-listen", "127.0.0.1:0", "-pxe-interface", "lo", "-pxe-kernel", filepath.Join(dir, "vmlinuz"), "-pxe-initramfs", img, "-pxe-export", "a", "a=" + img},
			"pxe: kernel: open " + filepath.Join(dir, "vmlinuz") + ": no such file or directory"},
		{[]string{"-listen", "127.0.0.1:0", "-pxe-interface", "lo", "-pxe-kernel", img, "-pxe-initramfs", img, "-pxe-ipxe-bios", filepath.Join(dir, "undionly.kpxe"), "-pxe-export", "a", "a=" + img},
			"pxe: ipxe_bios: open " + filepath.Join(dir, "undionly.kpxe")},
		{[]string{"-listen", "127.0.0.1:0", "-pxe-interface", "nbdboot-none0", "-pxe-kernel", img, "-pxe-initramfs", img, "-pxe-export", "a", "a=" + img},
			"pxe: interface nbdboot-none0"},
		{[]string{"-listen", "127.0.0.1:0", "-pxe-interface", "lo", "-pxe-kernel", img, "-pxe-initramfs", img, "a=" + img},
			"[pxe.default] names no export"},
		{[]string{"-listen", "127.0.0.1:0", "-pxe-interface", "lo", "-pxe-kernel", img, "-pxe-initramfs", img, "-pxe-export", "a",
			"-pxe-max-transfers-per-address", "33", "-pxe-max-http-per-address", "-1", "-pxe-stall-timeout", "-1s", "a=" + img},
			"pxe: max_transfers_per_address 33: not within 1-32 (the transfers served at once)\npxe: max_http_per_address -1: not within 1-256 (the HTTP connections served at once)\npxe: stall_timeout -1s is negative"},
	} {
		var stderr bytes.Buffer
		err := run(context.Background(), tt.args, &stderr, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("run(%q) = %v; want error containing %q", tt.args, err, tt.wantErr)
		}
	}
}

// TestRunServes starts nbdserve in-process from a config file plus an
// argument, negotiates with both exports, and stops it by cancelling.
func TestRunServes(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	os.WriteFile(a, bytes.Repeat([]byte{0xaa}, 1<<20), 0o644)
	os.WriteFile(b, make([]byte, 2<<20), 0o644)
	cfg := filepath.Join(dir, "c.toml")
	os.WriteFile(cfg, []byte(`
listen = "127.0.0.1:1"   # overridden by -listen
[limits]
max_inflight = 8
[[export]]
name = "a"
path = "`+a+`"
readonly = true
description = "from the file, with, commas"
`), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	addrc, done := make(chan net.Addr, 1), make(chan error, 1)
	var stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"-config", cfg, "-listen", "127.0.0.1:0", "-state", filepath.Join(dir, "state"), "b=" + b + ",desc=scratch"},
			&stderr, func(a net.Addr) { addrc <- a }, nil)
	}()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	for _, tt := range []struct {
		name     string
		size     uint64
		readOnly bool
		desc     string
	}{{"a", 1 << 20, true, "from the file, with, commas"}, {"b", 2 << 20, false, "scratch"}} {
		nc, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		info, err := protocol.ClientInfo(nc, tt.name)
		nc.Close()
		if err != nil {
			t.Fatalf("info %s: %v", tt.name, err)
		}
		if info.Size != tt.size || (info.Flags&protocol.FlagReadOnly != 0) != tt.readOnly || info.Description != tt.desc {
			t.Errorf("export %s: %+v", tt.name, info)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "state")); err != nil || !st.IsDir() {
		t.Errorf("state directory not created: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if !strings.Contains(stderr.String(), "msg=stopped") {
		t.Errorf("log:\n%s", stderr.String())
	}
}

// TestExampleConfig keeps the documented example loadable.
func TestExampleConfig(t *testing.T) {
	var pc pxe.Config
	cfg, err := server.LoadConfig("nbdserve.example.toml", map[string]any{"pxe": &pc})
	if err != nil {
		t.Fatal(err)
	}
	if !pc.Enabled() || pc.Default.Export != "lab" || len(pc.Machines) != 2 || !pc.Machines[1].Refuse || pc.DHCP == nil ||
		pc.DHCP.Lease != tomlx.Duration(time.Hour) || pc.IPXEEFI != pxe.DefaultIPXEEFI ||
		pc.MaxTransfersPerAddress != pxe.DefaultTransfersPerAddress || pc.MaxHTTPPerAddress != pxe.DefaultHTTPPerAddress ||
		pc.StallTimeout != tomlx.Duration(pxe.DefaultStallTimeout) || pc.DHCP.NewLeasesPerMinute != pxe.DefaultNewLeasesPerMinute {
		t.Errorf("example [pxe]: %+v", pc)
	}
	if err := pc.Validate(); err != nil {
		t.Errorf("example [pxe]: %v", err)
	}
	def := server.DefaultLimits()
	if cfg.Listen != ":10809" || cfg.Limits != def || len(cfg.Exports) != 3 || !cfg.Exports[0].ReadOnly || cfg.Exports[1].COW != "persistent" ||
		cfg.Exports[1].Quota != 2<<30 || cfg.Exports[2].Grace != server.Duration(10*time.Minute) || cfg.ControlPath() != "/var/lib/nbdserve/control.sock" {
		t.Errorf("example config: %+v", cfg)
	}
}

// logWatch is a log sink that reports lines containing a marker.
type logWatch struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	marker string
	seen   chan string
}

func (w *logWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range strings.Split(string(p), "\n") {
		for _, m := range []string{"msg=reloaded", `msg="reload failed`} {
			if strings.Contains(l, m) {
				w.seen <- l
			}
		}
	}
	return w.buf.Write(p)
}

// TestReload: a reload adds and removes exports from the rewritten
// config file; a broken file leaves them as they were.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	a, c := filepath.Join(dir, "a.img"), filepath.Join(dir, "c.img")
	os.WriteFile(a, make([]byte, 1<<20), 0o644)
	os.WriteFile(c, make([]byte, 3<<20), 0o644)
	cfg := filepath.Join(dir, "c.toml")
	os.WriteFile(cfg, []byte("[[export]]\nname = \"a\"\npath = \""+a+"\"\n"), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reload := make(chan os.Signal)
	log := &logWatch{seen: make(chan string, 4)}
	addrc, done := make(chan net.Addr, 1), make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-config", cfg, "-listen", "127.0.0.1:0"}, log, func(a net.Addr) { addrc <- a }, reload)
	}()
	addr := (<-addrc).String()
	info := func(name string) (protocol.ExportInfo, error) {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		return protocol.ClientInfo(nc, name)
	}
	if _, err := info("a"); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(cfg, []byte("[[export]]\nname = \"c\"\npath = \""+c+"\"\n"), 0o644)
	reload <- syscall.SIGHUP
	if l := <-log.seen; !strings.Contains(l, "msg=reloaded") || !strings.Contains(l, "opened=[c]") || !strings.Contains(l, "retired=[a]") {
		t.Fatalf("reload: %s", l)
	}
	if e, err := info("c"); err != nil || e.Size != 3<<20 {
		t.Errorf("export c after reload: %+v, %v", e, err)
	}
	if _, err := info("a"); !errors.Is(err, protocol.ErrUnknownExport) {
		t.Errorf("export a after reload: %v", err)
	}
	os.WriteFile(cfg, []byte("[[export]]\nname = \n"), 0o644)
	reload <- syscall.SIGHUP
	if l := <-log.seen; !strings.Contains(l, "reload failed") {
		t.Fatalf("broken reload: %s", l)
	}
	if _, err := info("c"); err != nil {
		t.Errorf("export c after a failed reload: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
