package bootcfg

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParse checks that no command line makes Parse panic, that Parse
// always returns a Config, and that every NBD target it yields survives
// URI() -> ParseNBDRoot with its servers and export intact.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"nbdroot=nbd:10.0.2.2:10809/rootfs:ext4:noatime:timeout=30,persist ip=dhcp ro",
		"root=/dev/nbd0p1 nbdroot=nbd://[fd00::1]:10809,srv2/x%20y nbdboot.connections=4",
		`nbdroot="nbd://s/a b" -- single`,
		"nbdroot=srv,rootfs,nbd1 root=/dev/nbd1 rd.break=pre-mount rd.shell=0",
		"nbdroot=dhcp nbdboot.overlay=tmpfs nbdboot.clientid=x nbdboot.modules=a,b nbdboot.typo=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cmdline string) {
		c, err := Parse(cmdline)
		if c == nil {
			t.Fatalf("Parse(%q) returned a nil Config (err %v)", cmdline, err)
		}
		_ = c.Validate()
		_ = c.String()
		if c.NBD != nil {
			roundTrip(t, *c.NBD)
			_, _ = c.Resolve(*c.NBD)
		}
	})
}

// FuzzParseNBDRoot checks the round trip of single root values: a parsed
// URI comes back whole from its URI(), any other form keeps its servers
// and export.
func FuzzParseNBDRoot(f *testing.F) {
	for _, s := range []string{
		"nbd://srv/export", "nbd://[fe80::1%25eth0]:2000,h/a%2Fb", "nbd:[fd00::1]:10809/x:ext4::bs=4096",
		"nbd:srv:name:xfs:noatime:-persist,-C 2", "srv,2000,nbd3", "nbds://s/x", "nbd://s:/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tgt, err := ParseNBDRoot(s)
		if err != nil {
			return
		}
		if len(tgt.Servers) == 0 {
			t.Fatalf("ParseNBDRoot(%q) gave no server", s)
		}
		back := roundTrip(t, tgt)
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(s)), "nbd://") && !reflect.DeepEqual(back, tgt) {
			t.Fatalf("ParseNBDRoot(%q) = %#v; its URI %q parses to %#v", s, tgt, tgt.URI(), back)
		}
		_ = tgt.String()
	})
}

func roundTrip(t *testing.T, tgt Target) Target {
	t.Helper()
	back, err := ParseNBDRoot(tgt.URI())
	if err != nil {
		t.Fatalf("URI %q of %#v does not parse: %v", tgt.URI(), tgt, err)
	}
	if !reflect.DeepEqual(back.Servers, tgt.Servers) || back.Export != tgt.Export {
		t.Fatalf("URI %q of %#v parses to %#v", tgt.URI(), tgt, back)
	}
	return back
}
