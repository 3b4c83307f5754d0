package bootcfg

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/nbdnl"
)

// defaults is what Parse returns for an empty command line.
func defaults() Config {
	return Config{
		ReadOnly:        true,
		Init:            "/sbin/init",
		Connections:     1,
		RequestTimeout:  10 * time.Second,
		DeadConnTimeout: time.Hour,
		Retry:           time.Minute,
		Shell:           true,
	}
}

func TestParse(t *testing.T) {
	one := func(host string, port uint16, export string) *Target {
		return &Target{Servers: []Server{srv(host, port)}, Export: export}
	}
	tests := []struct {
		name, in string
		edit     func(c *Config) // from defaults()
	}{
		{"dracut nbdroot", "nbdroot=nbd:10.0.2.2:10809/rootfs ip=dhcp", func(c *Config) {
			c.NBD = one("10.0.2.2", 10809, "rootfs")
			c.IP = []string{"dhcp"}
		}},
		{"dracut root=nbd with fields", "root=nbd:srv:rootfs:ext4:noatime:timeout=10 rw", func(c *Config) {
			c.NBD = &Target{Servers: []Server{srv("srv", 10809)}, Export: "rootfs", FSType: "ext4", RootFlags: "noatime",
				Options: Options{Timeout: 10 * time.Second}}
			c.ReadOnly = false
		}},
		{"netroot", "netroot=nbd:srv:2000", func(c *Config) { c.NBD = one("srv", 2000, "") }},
		{"uri with device and partition", "root=/dev/nbd0p2 nbdroot=nbd://[fd00::1]:10809/x rootfstype=ext4 rootflags=data=journal",
			func(c *Config) {
				c.NBD = one("fd00::1", 10809, "x")
				c.RootDevice = dev("/dev/nbd0p2")
				c.RootFSType = "ext4"
				c.RootFlags = "data=journal"
			}},
		{"debian", "root=/dev/nbd1 nbdroot=10.0.2.2,rootfs,nbd1 ip=::::client:eth0:dhcp", func(c *Config) {
			c.NBD = &Target{Servers: []Server{srv("10.0.2.2", 10809)}, Export: "rootfs", Device: dev("/dev/nbd1")}
			c.RootDevice = dev("/dev/nbd1")
			c.IP = []string{"::::client:eth0:dhcp"}
		}},
		{"dhcp", "root=/dev/nbd0 nbdroot=dhcp", func(c *Config) { c.FromDHCP = true; c.RootDevice = dev("/dev/nbd0") }},
		{"root=dhcp", "root=dhcp", func(c *Config) { c.FromDHCP = true }},
		{"netroot=dhcp", "netroot=DHCP", func(c *Config) { c.FromDHCP = true }},
		{"repeated nbdroot gives a server list",
			"nbdroot=nbd:srv1:2000/x:ext4 nbdroot=nbd://srv2,srv1:2000/x root=nbd:[fd00::3]:x", func(c *Config) {
				c.NBD = &Target{Servers: []Server{srv("srv1", 2000), srv("srv2", 10809), srv("fd00::3", 10809)}, Export: "x", FSType: "ext4"}
			}},
		{"repeated ip", "ip=192.168.1.5::192.168.1.1:255.255.255.0::eth0:off ip=eth1:dhcp nbdroot=nbd://s/x", func(c *Config) {
			c.NBD = one("s", 10809, "x")
			c.IP = []string{"192.168.1.5::192.168.1.1:255.255.255.0::eth0:off", "eth1:dhcp"}
		}},
		{"ro rw last wins", "nbdroot=nbd://s rw ro", func(c *Config) { c.NBD = one("s", 10809, "") }},
		{"init and init args", "nbdroot=nbd://s init=/lib/systemd/systemd console=ttyS0 rootwait -- single emergency",
			func(c *Config) {
				c.NBD = one("s", 10809, "")
				c.Init = "/lib/systemd/systemd"
				c.InitArgs = []string{"single", "emergency"}
			}},
		{"quoted export", `nbdroot="nbd://s/my disk"`, func(c *Config) { c.NBD = one("s", 10809, "my disk") }},
		{"own options", "nbdroot=nbd://s nbdboot.connections=4 nbdboot.timeout=10 nbdboot.deadconn=2m nbdboot.retry=90s " +
			"nbdboot.debug nbdboot.overlay=tmpfs nbdboot.clientid=lab-pc-07 nbdboot.modules=e1000,virtio-net " +
			"nbdboot.modules=nvme nbdboot.shell=0", func(c *Config) {
			c.NBD = one("s", 10809, "")
			c.Connections, c.connectionsSet = 4, true
			c.RequestTimeout, c.timeoutSet = 10*time.Second, true
			c.DeadConnTimeout = 2 * time.Minute
			c.Retry = 90 * time.Second
			c.Debug = true
			c.Overlay = OverlayTmpfs
			c.ClientID = "lab-pc-07"
			c.Modules = []string{"e1000", "virtio-net", "nvme"}
			c.Shell = false
		}},
		{"timeout 0 disables", "nbdroot=nbd://s nbdboot.timeout=0 nbdboot.overlay=none", func(c *Config) {
			c.NBD = one("s", 10809, "")
			c.RequestTimeout, c.timeoutSet = 0, true
		}},
		{"dracut shell and breaks", "nbdroot=nbd://s rd.shell=no rd.break rd.break=pre-mount nbdboot.break=mount rd.debug",
			func(c *Config) {
				c.NBD = one("s", 10809, "")
				c.Shell = false
				c.Breaks = []BreakPoint{BreakPrePivot, BreakPreMount, BreakMount}
				c.Debug = true
			}},
		{"attach ioctl", "nbdroot=nbd://s nbdboot.attach=ioctl", func(c *Config) {
			c.NBD = one("s", 10809, "")
			c.Attach = AttachIoctl
		}},
		{"attach netlink", "nbdroot=nbd://s nbdboot.attach=ioctl nbdboot.attach=netlink", func(c *Config) {
			c.NBD = one("s", 10809, "")
			c.Attach = AttachNetlink
		}},
		{"ignored", "BOOT_IMAGE=/vmlinuz console=ttyS0,115200 quiet rootwait ro=x nbdroot=nbd://s", func(c *Config) {
			c.NBD = one("s", 10809, "")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			want := defaults()
			tt.edit(&want)
			got.Params = nil
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("Parse(%q) =\n %+v\nwant\n %+v", tt.in, *got, want)
			}
		})
	}
}

// TestParseErrors checks that each malformed parameter is reported with its
// name and what was expected.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		in   string
		want []string // all must appear in the error
	}{
		{"nbdroot=nbd:10.0.2.2:notaport:ext4:x:y:z", []string{
			"nbdroot=nbd:10.0.2.2:notaport:ext4:x:y:z: too many fields; expected nbd:HOST:PORT[:FSTYPE[:ROOTFLAGS[:OPTIONS]]]"}},
		{"nbdroot=nbds://srv/x", []string{"nbdroot=nbds://srv/x: TLS not supported yet"}},
		{"nbdroot=nbd+unix:///x", []string{"nbdroot=nbd+unix:///x: nbd+unix"}},
		{"nbdroot", []string{"nbdroot: needs a value"}},
		{"nbdroot=", []string{"nbdroot=: needs a value"}},
		{"root=/dev/sda1", []string{"root=/dev/sda1: nbdboot mounts only NBD roots; expected /dev/nbdN[pM]"}},
		{"root=/dev/nbdx", []string{"root=/dev/nbdx: expected /dev/nbdN or /dev/nbdNpM"}},
		{"root=/dev/nbd0p0", []string{"root=/dev/nbd0p0: expected /dev/nbdN or /dev/nbdNpM"}},
		{"netroot=iscsi:srv::::iqn", []string{"netroot=iscsi:srv::::iqn: only NBD network roots are supported"}},
		{"nbdroot=nbd:srv:99999", []string{`nbdroot=nbd:srv:99999: port "99999": expected a number from 1 to 65535`}},
		{"nbdroot=nbd://fd00::1/x", []string{"nbdroot=nbd://fd00::1/x: server \"fd00::1\": host \"fd00::1\": an IPv6 address must be in brackets"}},
		{"rootfstype=ext4;rm", []string{"rootfstype=ext4;rm: \"ext4;rm\": expected a file system type like ext4"}},
		{"init=sbin/init", []string{"init=sbin/init: expected an absolute path"}},
		{"ip", []string{"ip: needs a value"}},
		{"nbdboot.connections=0", []string{"nbdboot.connections=0: expected a number from 1 to 16"}},
		{"nbdboot.connections=17", []string{"nbdboot.connections=17: expected a number from 1 to 16"}},
		{"nbdboot.connections", []string{"nbdboot.connections: expected a number from 1 to 16"}},
		{"nbdboot.timeout=fast", []string{"nbdboot.timeout=fast: expected whole seconds"}},
		{"nbdboot.timeout=-5s", []string{"nbdboot.timeout=-5s: expected whole seconds"}},
		{"nbdboot.deadconn=1.5s", []string{"nbdboot.deadconn=1.5s: expected whole seconds"}},
		{"nbdboot.retry=48h", []string{"nbdboot.retry=48h: expected whole seconds from 0 to 86400"}},
		{"nbdboot.overlay=zram", []string{"nbdboot.overlay=zram: expected tmpfs or none"}},
		{"nbdboot.attach=nl", []string{"nbdboot.attach=nl: expected netlink or ioctl"}},
		{"nbdboot.attach", []string{"nbdboot.attach: expected netlink or ioctl"}},
		{"nbdboot.clientid=a/b", []string{"nbdboot.clientid=a/b: expected 1 to 64 characters"}},
		{"nbdboot.clientid", []string{"nbdboot.clientid: expected 1 to 64 characters"}},
		{"nbdboot.modules=e1000,../x", []string{`nbdboot.modules=e1000,../x: module "../x": expected a comma-separated list`}},
		{"nbdboot.modules=,", []string{"nbdboot.modules=,: expected a comma-separated list"}},
		{"nbdboot.debug=maybe", []string{"nbdboot.debug=maybe: expected no value, 1 or 0"}},
		{"rd.shell=2", []string{"rd.shell=2: expected no value, 1 or 0"}},
		{"rd.break=initqueue", []string{"rd.break=initqueue: expected no value or one of pre-mount, mount, pre-pivot"}},
		{"nbdboot.conections=2", []string{`nbdboot.conections=2: unknown nbdboot option "nbdboot.conections"`}},
		{"nbdboot.timeot=5", []string{`unknown nbdboot option "nbdboot.timeot"`}},
		{"nbdroot=nbd://a/x nbdroot=nbd://b/y", []string{`nbdroot=nbd://b/y: names export "y" but an earlier NBD root names "x"`}},
		{"nbdroot=nbd:a:x:ext4 nbdroot=nbd:b:x:xfs", []string{`nbdroot=nbd:b:x:xfs: FSTYPE "xfs" conflicts with "ext4"`}},
		{"nbdroot=nbd://a/x root=dhcp", []string{"nbdroot=dhcp (or root=dhcp) conflicts"}},
		{"root=/dev/nbd2 nbdroot=srv,x,nbd1", []string{"root=/dev/nbd2 conflicts with device /dev/nbd1"}},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) succeeded", tt.in)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Parse(%q) error:\n %v\nwant it to contain\n %s", tt.in, err, w)
			}
		}
	}
}

// TestParseCollectsAll checks that Parse reports every bad parameter and
// still returns the good ones.
func TestParseCollectsAll(t *testing.T) {
	c, err := Parse("nbdboot.connections=99 nbdroot=nbd://srv/x nbdboot.bogus rd.break=never ip=dhcp nbdboot.timeout=x")
	if err == nil {
		t.Fatal("no error")
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 4 {
		t.Fatalf("want 4 joined errors, got: %v", err)
	}
	for _, w := range []string{"nbdboot.connections=99", "nbdboot.bogus", "rd.break=never", "nbdboot.timeout=x"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not name %s: %v", w, err)
		}
	}
	if c == nil || c.NBD == nil || c.NBD.Export != "x" || !reflect.DeepEqual(c.IP, []string{"dhcp"}) {
		t.Errorf("good parameters lost: %+v", c)
	}
	if c.Connections != DefaultConnections || c.RequestTimeout != DefaultRequestTimeout {
		t.Errorf("bad values replaced the defaults: %+v", c)
	}
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{"nbdroot=nbd://s/x", ""},
		{"nbdroot=dhcp", ""},
		{"", "no nbdroot= or root=nbd:… given"},
		{"root=/dev/nbd0 console=ttyS0", "no nbdroot= or root=nbd:… given"},
	} {
		c, err := Parse(tt.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.in, err)
		}
		err = c.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("Validate(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
	c := &Config{NBD: &Target{}, Connections: 0}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "names no server") || !strings.Contains(err.Error(), "nbdboot.connections=0") {
		t.Errorf("Validate(hand-made) = %v", err)
	}
}

func TestResolve(t *testing.T) {
	dhcpTarget := Target{Servers: []Server{srv("s", 2000)}, FSType: "xfs", RootFlags: "noatime",
		Options: Options{Timeout: 5 * time.Second, Connections: 3, BlockSize: 4096}}
	tests := []struct {
		in     string
		target *Target // nil: the Config's own
		want   Boot
	}{
		{"nbdroot=nbd://s/x", nil, Boot{Root: nbdnl.Device{Index: 0, Partition: 0}, ReadOnly: true, Connections: 1,
			RequestTimeout: 10 * time.Second, DeadConnTimeout: time.Hour}},
		{"nbdroot=nbd:s:x:ext4:ro:connections=2,timeout=7 root=/dev/nbd0p1 rw", nil, Boot{Root: nbdnl.Device{Index: 0, Partition: 1},
			FSType: "ext4", Flags: "ro", Connections: 2, RequestTimeout: 7 * time.Second, DeadConnTimeout: time.Hour}},
		// The command line wins over the target's fields.
		{"root=/dev/nbd3p2 nbdroot=dhcp rootfstype=ext4 rootflags=discard nbdboot.connections=1 nbdboot.timeout=0", &dhcpTarget,
			Boot{Root: nbdnl.Device{Index: 3, Partition: 2}, FSType: "ext4", Flags: "discard", ReadOnly: true, Connections: 1,
				RequestTimeout: 0, DeadConnTimeout: time.Hour, BlockSize: 4096}},
		{"nbdroot=dhcp", &dhcpTarget, Boot{Root: nbdnl.Device{Index: 0, Partition: 0}, FSType: "xfs", Flags: "noatime", ReadOnly: true,
			Connections: 3, RequestTimeout: 5 * time.Second, DeadConnTimeout: time.Hour, BlockSize: 4096}},
		{"nbdroot=srv,x,nbd2", nil, Boot{Root: nbdnl.Device{Index: 2, Partition: 0}, ReadOnly: true, Connections: 1,
			RequestTimeout: 10 * time.Second, DeadConnTimeout: time.Hour}},
	}
	for _, tt := range tests {
		c, err := Parse(tt.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.in, err)
		}
		tgt := tt.target
		if tgt == nil {
			tgt = c.NBD
		}
		got, err := c.Resolve(*tgt)
		if err != nil {
			t.Fatalf("Resolve(%q): %v", tt.in, err)
		}
		tt.want.Target = *tgt
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Resolve(%q) =\n %+v\nwant\n %+v", tt.in, got, tt.want)
		}
	}
	c, _ := Parse("root=/dev/nbd1 nbdroot=dhcp")
	if _, err := c.Resolve(Target{Servers: []Server{srv("s", 1)}, Device: dev("/dev/nbd0")}); err == nil {
		t.Error("Resolve accepted root=/dev/nbd1 with a root-path naming nbd0")
	}
}

func TestConfigString(t *testing.T) {
	c, err := Parse("nbdroot=nbd:srv:2000/x:ext4 ip=dhcp rw nbdboot.overlay nbdboot.clientid=pc1 nbdboot.modules=e1000 rd.break -- single")
	if err != nil {
		t.Fatal(err)
	}
	want := "root=nbd://srv:2000/x (fstype=ext4) device=/dev/nbd0 rw ip=dhcp init=/sbin/init connections=1 timeout=10s " +
		"deadconn=1h0m0s retry=1m0s overlay=tmpfs clientid=pc1 modules=e1000 shell=true debug=false break=pre-pivot -- single"
	if got := c.String(); got != want {
		t.Errorf("String() =\n %s\nwant\n %s", got, want)
	}
	if got, _ := Parse(""); !strings.HasPrefix(got.String(), "root=none device=/dev/nbd0 ro ") {
		t.Errorf("String() of empty = %s", got)
	}
}
