package bootcfg

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/nbdnl"
)

func srv(host string, port uint16) Server { return Server{Host: host, Port: port} }

// dev is the device /dev/nbdN[pM] names.
func dev(name string) *nbdnl.Device {
	d, err := nbdnl.ParseDevice(name)
	if err != nil {
		panic(err)
	}
	return &d
}

func TestParseNBDRoot(t *testing.T) {
	tests := []struct {
		in   string
		want Target
	}{
		// dracut: nbd:HOST:PORT[:FSTYPE[:ROOTFLAGS[:OPTIONS]]]
		{"nbd:10.0.2.2:10809", Target{Servers: []Server{srv("10.0.2.2", 10809)}}},
		{"nbd:10.0.2.2:2000", Target{Servers: []Server{srv("10.0.2.2", 2000)}}},
		{"nbd:srv", Target{Servers: []Server{srv("srv", 10809)}}},
		{"nbd:srv:", Target{Servers: []Server{srv("srv", 10809)}}},
		{"nbd:srv:2000:ext4", Target{Servers: []Server{srv("srv", 2000)}, FSType: "ext4"}},
		{"nbd:srv:2000:ext4:noatime,discard", Target{Servers: []Server{srv("srv", 2000)}, FSType: "ext4", RootFlags: "noatime,discard"}},
		{"nbd:srv:2000:ext4:ro:timeout=30,persist,connections=2,bs=4096,-swap", Target{
			Servers: []Server{srv("srv", 2000)}, FSType: "ext4", RootFlags: "ro",
			Options: Options{Timeout: 30 * time.Second, Persist: true, Connections: 2, BlockSize: 4096, Extra: []string{"-swap"}},
		}},
		{"nbd:srv:2000:::-t 45,-persist,-C 4", Target{
			Servers: []Server{srv("srv", 2000)},
			Options: Options{Timeout: 45 * time.Second, Persist: true, Connections: 4},
		}},
		{"nbd:srv:2000:::timeout=2m", Target{Servers: []Server{srv("srv", 2000)}, Options: Options{Timeout: 2 * time.Minute}}},
		// A non-numeric PORT is an export name on the default port.
		{"nbd:srv:rootfs", Target{Servers: []Server{srv("srv", 10809)}, Export: "rootfs"}},
		{"nbd:srv:rootfs:ext4", Target{Servers: []Server{srv("srv", 10809)}, Export: "rootfs", FSType: "ext4"}},
		{"nbd:srv:10809x", Target{Servers: []Server{srv("srv", 10809)}, Export: "10809x"}},
		// PORT/EXPORT.
		{"nbd:srv:10810/rootfs", Target{Servers: []Server{srv("srv", 10810)}, Export: "rootfs"}},
		{"nbd:srv:10810/a/b:ext4", Target{Servers: []Server{srv("srv", 10810)}, Export: "a/b", FSType: "ext4"}},
		{"nbd:srv:/rootfs", Target{Servers: []Server{srv("srv", 10809)}, Export: "rootfs"}},
		{"nbd:srv:lab/debian", Target{Servers: []Server{srv("srv", 10809)}, Export: "lab/debian"}},
		// IPv6 in brackets.
		{"nbd:[fd00::1]:10809/x", Target{Servers: []Server{srv("fd00::1", 10809)}, Export: "x"}},
		{"nbd:[fd00::1]", Target{Servers: []Server{srv("fd00::1", 10809)}}},
		{"nbd:[fe80::1%eth0]:2000:ext4", Target{Servers: []Server{srv("fe80::1%eth0", 2000)}, FSType: "ext4"}},
		{"NBD:srv:2000", Target{Servers: []Server{srv("srv", 2000)}}},
		{"  nbd:srv:2000\n", Target{Servers: []Server{srv("srv", 2000)}}},

		// URIs.
		{"nbd://srv/export", Target{Servers: []Server{srv("srv", 10809)}, Export: "export"}},
		{"nbd://srv", Target{Servers: []Server{srv("srv", 10809)}}},
		{"nbd://srv/", Target{Servers: []Server{srv("srv", 10809)}}},
		{"nbd://10.0.2.2:2000/root%20fs", Target{Servers: []Server{srv("10.0.2.2", 2000)}, Export: "root fs"}},
		{"nbd://srv//abs/path", Target{Servers: []Server{srv("srv", 10809)}, Export: "/abs/path"}},
		{"nbd://[fd00::1]:10809/x", Target{Servers: []Server{srv("fd00::1", 10809)}, Export: "x"}},
		{"nbd://[fd00::1]/x", Target{Servers: []Server{srv("fd00::1", 10809)}, Export: "x"}},
		{"nbd://[fe80::1%25eth0]:2000/x", Target{Servers: []Server{srv("fe80::1%eth0", 2000)}, Export: "x"}},
		{"nbd://srv1,srv2/export", Target{Servers: []Server{srv("srv1", 10809), srv("srv2", 10809)}, Export: "export"}},
		{"nbd://srv1:2000,[fd00::2]:2001,10.0.0.3/export", Target{
			Servers: []Server{srv("srv1", 2000), srv("fd00::2", 2001), srv("10.0.0.3", 10809)}, Export: "export"}},
		{"NBD://Srv.example.org/e", Target{Servers: []Server{srv("Srv.example.org", 10809)}, Export: "e"}},
		// A server named twice is tried once (as across nbdroot= values).
		{"nbd://srv1,srv2:10809,srv2/e", Target{Servers: []Server{srv("srv1", 10809), srv("srv2", 10809)}, Export: "e"}},

		// initramfs-tools: HOST,PORT|EXPORT[,nbdX].
		{"10.0.2.2,2000", Target{Servers: []Server{srv("10.0.2.2", 2000)}}},
		{"10.0.2.2,rootfs", Target{Servers: []Server{srv("10.0.2.2", 10809)}, Export: "rootfs"}},
		{"srv,rootfs,nbd1", Target{Servers: []Server{srv("srv", 10809)}, Export: "rootfs", Device: dev("/dev/nbd1")}},
		{"srv,2000,/dev/nbd3", Target{Servers: []Server{srv("srv", 2000)}, Device: dev("/dev/nbd3")}},
		{"[fd00::1],rootfs", Target{Servers: []Server{srv("fd00::1", 10809)}, Export: "rootfs"}},
	}
	for _, tt := range tests {
		got, err := ParseNBDRoot(tt.in)
		if err != nil {
			t.Errorf("ParseNBDRoot(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseNBDRoot(%q) =\n %#v\nwant\n %#v", tt.in, got, tt.want)
		}
		// The URI names the same servers and export.
		back, err := ParseNBDRoot(got.URI())
		if err != nil {
			t.Errorf("ParseNBDRoot(%q) (URI of %q): %v", got.URI(), tt.in, err)
			continue
		}
		if !reflect.DeepEqual(back.Servers, got.Servers) || back.Export != got.Export {
			t.Errorf("URI round trip of %q via %q = %#v", tt.in, got.URI(), back)
		}
	}
}

func TestParseNBDRootErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", "empty value"},
		{"dhcp", "DHCP root-path"},
		{"nbds://srv/x", "TLS not supported yet"},
		{"nbds+unix:///x?socket=/s", "TLS not supported yet"},
		{"nbd+unix:///x?socket=/s", "nbd+unix"},
		{"iscsi://srv/x", `scheme "iscsi" not supported`},
		{"nbd:10.0.2.2:notaport:ext4:x:y:z", "too many fields; expected nbd:HOST:PORT[:FSTYPE[:ROOTFLAGS[:OPTIONS]]]"},
		{"nbd::2000", "empty host"},
		{"nbd:srv:0", `port "0": expected a number from 1 to 65535`},
		{"nbd:srv:70000", `port "70000": expected a number from 1 to 65535`},
		{"nbd:srv:2000:ext 4", "FSTYPE"},
		{"nbd:srv:2000:ext4::timeout=x", `option "timeout=x": expected whole seconds`},
		{"nbd:srv:2000:ext4::bs=1000", "power of two"},
		{"nbd:srv:2000:ext4::connections=17", "from 1 to 16"},
		{"nbd:srv:2000:ext4::persist=1", "takes no value"},
		{"nbd:[fd00::1:2000", "without ']'"},
		{"nbd:[fd00::1]x:2000", `"x:2000" after ']'`},
		{"nbd:[10.0.0.1]:2000", "not an IPv6 address"},
		{"nbd:sr v:2000", "invalid character"},
		{"nbd://fd00::1/x", "must be in brackets"},
		{"nbd:///x", "no server"},
		{"nbd://srv:/x", "empty port"},
		{"nbd://srv:abc/x", `port "abc"`},
		{"nbd://srv1,,srv2/x", "empty host"},
		{"nbd://user@srv/x", "user information"},
		{"nbd://srv/x?tls=on", "query or fragment"},
		{"nbd://srv/x%2", "truncated %-escape"},
		{"nbd://srv/x%zz", "bad %-escape"},
		{"nbd://srv/" + strings.Repeat("a", 4097), "NBD limit is 4096"},
		{"srv,2000,nbd1,x", "too many fields; expected HOST,PORT|EXPORT[,nbdX]"},
		{"srv,", "empty PORT|EXPORT"},
		{"srv,2000,sda", `device "sda"`},
		{"srv,99999", `port "99999"`},
		{"/dev/sda1", "unrecognised NBD root"},
	}
	for _, tt := range tests {
		_, err := ParseNBDRoot(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseNBDRoot(%q) error = %v; want it to mention %q", tt.in, err, tt.want)
		}
	}
}

func TestTargetString(t *testing.T) {
	tests := []struct {
		t         Target
		uri, text string
	}{
		{Target{Servers: []Server{srv("srv", 10809)}, Export: "x"}, "nbd://srv/x", "nbd://srv/x"},
		{Target{Servers: []Server{srv("fd00::1", 2000), srv("h", 10809)}, Export: "a b/c%"},
			"nbd://[fd00::1]:2000,h/a%20b/c%25", "nbd://[fd00::1]:2000,h/a%20b/c%25"},
		{Target{Servers: []Server{srv("fe80::1%eth0", 10809)}}, "nbd://[fe80::1%25eth0]", "nbd://[fe80::1%25eth0]"},
		{Target{Servers: []Server{srv("srv", 2000)}, FSType: "ext4", RootFlags: "noatime",
			Options: Options{Timeout: 30 * time.Second, Persist: true, Extra: []string{"-swap"}}, Device: dev("/dev/nbd1")},
			"nbd://srv:2000", "nbd://srv:2000 (fstype=ext4 rootflags=noatime options=timeout=30,persist,-swap device=/dev/nbd1)"},
	}
	for _, tt := range tests {
		if got := tt.t.URI(); got != tt.uri {
			t.Errorf("URI() = %q, want %q", got, tt.uri)
		}
		if got := tt.t.String(); got != tt.text {
			t.Errorf("String() = %q, want %q", got, tt.text)
		}
	}
	if got := srv("fd00::1", 1).String(); got != "[fd00::1]:1" {
		t.Errorf("Server.String() = %q", got)
	}
}

func TestOptionsRoundTrip(t *testing.T) {
	for _, in := range []string{"", "timeout=30", "timeout=1500ms", "bs=512,persist,connections=16,foo=bar,-nofork"} {
		o, err := ParseOptions(in)
		if in == "timeout=1500ms" {
			if err == nil {
				t.Errorf("ParseOptions(%q) accepted a fraction of a second", in)
			}
			continue
		}
		if err != nil {
			t.Fatalf("ParseOptions(%q): %v", in, err)
		}
		if got := o.String(); got != in {
			t.Errorf("ParseOptions(%q).String() = %q", in, got)
		}
	}
}
