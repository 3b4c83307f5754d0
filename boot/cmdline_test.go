package boot

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/bootcfg"
)

func TestCommandLine(t *testing.T) {
	var c CommandLine
	cfg, err := c.Parse("console=ttyS0 nbdroot=10.0.2.2,root root=/dev/nbd0p1 rw nbdboot.overlay=tmpfs nbdboot.connections=4 rd.break ip=dhcp -- single")
	if err != nil {
		t.Fatal(err)
	}
	want := []bootcfg.Address{{Server: bootcfg.Server{Host: "10.0.2.2", Port: 10809}, Export: "root"}}
	if !slices.Equal(cfg.Servers, want) || cfg.Root != "/dev/nbd0p1" || !cfg.ReadWrite || cfg.Overlay != "tmpfs" ||
		cfg.Connections != 4 || !cfg.breakAt(BreakPrePivot) || !slices.Equal(cfg.InitArgs, []string{"single"}) ||
		!slices.Equal(cfg.IP, []string{"dhcp"}) || !cfg.Shell || cfg.Retry <= 0 || cfg.DeadConn <= 0 {
		t.Errorf("cfg = %+v", cfg)
	}
}

func TestCommandLineDHCP(t *testing.T) {
	var c CommandLine
	cfg, err := c.Parse("nbdroot=dhcp nbdboot.timeout=7")
	if err != nil || !cfg.FromDHCP || len(cfg.Servers) != 0 {
		t.Fatalf("Parse = %+v, %v", cfg, err)
	}
	cfg, err = c.ResolveRootPath("nbd:10.0.2.2:10809/root:squashfs")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Servers) != 1 || cfg.Servers[0].String() != "nbd://10.0.2.2:10809/root" || cfg.RootFSType != "squashfs" ||
		cfg.Timeout != 7*time.Second || cfg.Root != "/dev/nbd0" {
		t.Errorf("resolved = %+v", cfg)
	}
	if _, err := c.ResolveRootPath("nfs:foo"); err == nil {
		t.Error("a non-NBD root-path resolved")
	}
}

func TestCommandLineMalformed(t *testing.T) {
	var c CommandLine
	cfg, err := c.Parse("nbdroot=10.0.2.2,root nbdboot.connections=zero nbdboot.shell=0")
	if err == nil || !strings.Contains(err.Error(), "nbdboot.connections") {
		t.Fatalf("Parse error = %v, want one naming nbdboot.connections", err)
	}
	if cfg == nil || cfg.Shell {
		t.Errorf("partial cfg = %+v, want the shell setting kept", cfg)
	}
	if _, err := c.Parse("quiet"); err == nil || !strings.Contains(err.Error(), "nbdroot=") {
		t.Errorf("no root: %v", err)
	}
}
