package bootcfg

import (
	"reflect"
	"strings"
	"testing"
)

// sameConfig compares two Configs but for Params, which Format does not
// keep.
func sameConfig(a, b *Config) bool {
	x, y := *a, *b
	x.Params, y.Params = nil, nil
	return reflect.DeepEqual(x, y)
}

// checkFormat formats c and parses the result back: it must be c again.
func checkFormat(t *testing.T, c *Config) string {
	t.Helper()
	line, err := c.Format()
	if err != nil {
		t.Fatalf("Format(%+v): %v", c, err)
	}
	again, err := Parse(line)
	if err != nil {
		t.Fatalf("Parse(Format(c) = %q): %v", line, err)
	}
	if !sameConfig(c, again) {
		t.Fatalf("Parse(Format(c) = %q) =\n %+v\nwant\n %+v", line, again, c)
	}
	return line
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"ip=dhcp nbdroot=nbd://10.0.0.1/lab", "nbdroot=nbd://10.0.0.1/lab ip=dhcp ro"},
		{"", "ro"},
		{"nbdroot=dhcp rw", "nbdroot=dhcp rw"},
		{"nbdroot=nbd:10.0.2.2:10809/rootfs:ext4:noatime:timeout=30,persist ip=dhcp",
			"nbdroot=nbd:10.0.2.2:10809/rootfs:ext4:noatime:timeout=30,persist ip=dhcp ro"},
		{"root=/dev/nbd0p1 nbdroot=nbd://[fd00::1]:10809,srv2:2000/x%20y nbdboot.connections=4",
			"nbdroot=nbd://[fd00::1]/x%20y nbdroot=nbd://srv2:2000/x%20y root=/dev/nbd0p1 ro nbdboot.connections=4"},
		{"nbdroot=srv,rootfs,nbd1 root=/dev/nbd1 rd.break=pre-mount rd.shell=0",
			"nbdroot=nbd://srv/rootfs nbdroot=srv,rootfs,nbd1 root=/dev/nbd1 ro nbdboot.shell=0 nbdboot.break=pre-mount"},
		{"nbdroot=srv,2000,nbd3", "nbdroot=nbd://srv:2000 nbdroot=srv,2000,nbd3 ro"},
		{"nbdroot=nbd://s/x nbdboot.overlay nbdboot.clientid=pc17 nbdboot.modules=a,b nbdboot.modules=c nbdboot.attach=ioctl nbdboot.debug init=/bin/sh rootfstype=ext4 rootflags=noatime nbdboot.timeout=10 nbdboot.deadconn=60 nbdboot.retry=5m -- single x=\"a b\"",
			`nbdroot=nbd://s/x rootfstype=ext4 rootflags=noatime ro init=/bin/sh nbdboot.timeout=10 nbdboot.deadconn=60 nbdboot.retry=300 nbdboot.debug nbdboot.overlay=tmpfs nbdboot.attach=ioctl nbdboot.clientid=pc17 nbdboot.modules=a,b,c -- single x="a b"`},
		{`nbdroot="nbd:s:1/e:::-foo bar"`, `nbdroot="nbd:s:1/e:::-foo bar" ro`},
	} {
		c, err := Parse(tc.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.in, err)
		}
		if got := checkFormat(t, c); got != tc.want {
			t.Errorf("Format(Parse(%q)) =\n %s\nwant\n %s", tc.in, got, tc.want)
		}
	}
}

// A Config built by hand (a PXE or media builder's) formats and parses
// back whole.
func TestFormatBuilt(t *testing.T) {
	c, _ := Parse("")
	c.NBD = &Target{Servers: []Server{{Host: "10.0.0.1", Port: 10809}, {Host: "fd00::2", Port: 7000}}, Export: "lab"}
	c.IP = []string{"dhcp"}
	c.Overlay = OverlayTmpfs
	checkFormat(t, c)
}

func TestFormatErrors(t *testing.T) {
	for _, tc := range []struct {
		t    Target
		want string
	}{
		{Target{}, "no server"},
		{Target{Servers: []Server{{Host: "s", Port: 2000}}, Export: "e", Device: dev("/dev/nbd1")}, "no nbdroot= form"},
		{Target{Servers: []Server{{Host: "s", Port: 10809}}, Export: "a:b", FSType: "ext4"}, "holds ':'"},
	} {
		c, _ := Parse("")
		c.NBD = &tc.t
		if _, err := c.Format(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Format of %+v: %v, want an error mentioning %q", tc.t, err, tc.want)
		}
	}
}

// FuzzFormat: whatever command line parses, its Config formats (or says
// why not) and parses back to the same Config.
func FuzzFormat(f *testing.F) {
	for _, s := range []string{
		"ip=dhcp nbdroot=nbd://10.0.0.1/lab",
		"nbdroot=nbd:10.0.2.2:10809/rootfs:ext4:noatime:timeout=30,persist ip=dhcp ro",
		"root=/dev/nbd0p1 nbdroot=nbd://[fd00::1]:10809,srv2/x%20y nbdboot.connections=4",
		`nbdroot="nbd://s/a b" -- single`,
		"nbdroot=srv,rootfs,nbd1 root=/dev/nbd1 rd.break=pre-mount rd.shell=0",
		"nbdroot=dhcp nbdboot.overlay=tmpfs nbdboot.clientid=x nbdboot.modules=a,b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cmdline string) {
		c, err := Parse(cmdline)
		if err != nil {
			return
		}
		line, err := c.Format()
		if err != nil {
			return
		}
		again, err := Parse(line)
		if err != nil || !sameConfig(c, again) {
			t.Fatalf("Parse(%q) = %+v; Format gives %q, which parses to %+v, %v", cmdline, c, line, again, err)
		}
	})
}
