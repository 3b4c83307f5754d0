package boot

import (
	"reflect"
	"testing"

	"github.com/nbdboot/nbdboot/bootcfg"
)

func TestEarlyMounts(t *testing.T) {
	mounts := map[string]Mount{}
	dirs := map[string]bool{}
	for _, a := range EarlyMounts {
		switch v := a.(type) {
		case Mount:
			if !dirs[v.Target] {
				t.Errorf("%s mounted before its directory is made", v.Target)
			}
			mounts[v.Target] = v
		case Dir:
			dirs[v.Path] = true
		}
	}
	for target, want := range map[string]Mount{
		"/proc":    {Source: "proc", Target: "/proc", FSType: "proc", Flags: msNosuid | msNodev | msNoexec},
		"/sys":     {Source: "sysfs", Target: "/sys", FSType: "sysfs", Flags: msNosuid | msNodev | msNoexec},
		"/dev":     {Source: "devtmpfs", Target: "/dev", FSType: "devtmpfs", Flags: msNosuid, Data: "mode=0755"},
		"/dev/pts": {Source: "devpts", Target: "/dev/pts", FSType: "devpts", Flags: msNosuid | msNoexec, Data: "gid=5,mode=620,ptmxmode=000"},
		"/run":     {Source: "tmpfs", Target: "/run", FSType: "tmpfs", Flags: msNosuid | msNodev, Data: "mode=0755"},
	} {
		if got := mounts[target]; got != want {
			t.Errorf("mount of %s = %+v, want %+v", target, got, want)
		}
	}
}

func TestRootPlan(t *testing.T) {
	for _, tc := range []struct {
		name    string
		overlay bootcfg.Overlay
		root    bootcfg.Boot
		roExp   bool
		want    []Action
	}{
		{"ro by default", bootcfg.OverlayNone, bootcfg.Boot{ReadOnly: true}, false, []Action{
			Dir{"/newroot", 0o755},
			Mount{Source: "/dev/nbd0", Target: "/newroot", FSType: "ext4", Flags: msRdonly},
		}},
		{"rw with flags", bootcfg.OverlayNone, bootcfg.Boot{Flags: "noatime"}, false, []Action{
			Dir{"/newroot", 0o755},
			Mount{Source: "/dev/nbd0", Target: "/newroot", FSType: "ext4", Data: "noatime"},
		}},
		{"rw on a read-only export", bootcfg.OverlayNone, bootcfg.Boot{}, true, []Action{
			Dir{"/newroot", 0o755},
			Mount{Source: "/dev/nbd0", Target: "/newroot", FSType: "ext4", Flags: msRdonly},
		}},
		{"overlay", bootcfg.OverlayTmpfs, bootcfg.Boot{Flags: "noload"}, false, []Action{
			Dir{"/run/nbdboot/lower", 0o755},
			Mount{Source: "/dev/nbd0", Target: "/run/nbdboot/lower", FSType: "ext4", Flags: msRdonly, Data: "noload"},
			Dir{"/run/nbdboot/rw", 0o755},
			Mount{Source: "tmpfs", Target: "/run/nbdboot/rw", FSType: "tmpfs", Data: "mode=0755"},
			Dir{"/run/nbdboot/rw/upper", 0o755},
			Dir{"/run/nbdboot/rw/work", 0o755},
			Dir{"/newroot", 0o755},
			Mount{Source: "overlay", Target: "/newroot", FSType: "overlay",
				Data: "lowerdir=/run/nbdboot/lower,upperdir=/run/nbdboot/rw/upper,workdir=/run/nbdboot/rw/work"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RootPlan("/dev/nbd0", "ext4", tc.overlay, tc.root, tc.roExp); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("RootPlan =\n%v\nwant\n%v", got, tc.want)
			}
		})
	}
}

func TestMountString(t *testing.T) {
	m := Mount{Source: "/dev/nbd0", Target: "/newroot", FSType: "ext4", Flags: msRdonly, Data: "noatime"}
	if got, want := m.String(), "-t ext4 -o ro,noatime /dev/nbd0 on /newroot"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}
