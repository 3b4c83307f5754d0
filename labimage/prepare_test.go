package labimage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTree makes a root directory from path -> content ("->target" makes
// a symlink).
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		dst := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(c, "->"); ok {
			err = os.Symlink(target, dst)
		} else {
			err = os.WriteFile(dst, []byte(c), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// golden is a small installed system as an admin's golden image has it.
var golden = map[string]string{
	"etc/fstab": "# /etc/fstab\n" +
		"UUID=1234 / ext4 errors=remount-ro 0 1\n" +
		"UUID=5678 none swap sw 0 0\n" +
		"tmpfs /tmp tmpfs defaults 0 0\n" +
		"server:/home /home nfs defaults 0 0\n",
	"etc/network/interfaces": "source /etc/network/interfaces.d/*\n\n" +
		"auto lo\niface lo inet loopback\n\n" +
		"allow-hotplug enp3s0\niface enp3s0 inet dhcp\n\tmetric 10\n",
	"etc/hostname":                         "golden\n",
	"etc/hosts":                            "127.0.0.1\tlocalhost\n127.0.1.1\tgolden\n",
	"etc/machine-id":                       "0123456789abcdef0123456789abcdef\n",
	"var/lib/dbus/machine-id":              "0123456789abcdef0123456789abcdef\n",
	"lib/systemd/system/apt-daily.timer":   "[Timer]\n",
	"lib/systemd/system/fstrim.timer":      "[Timer]\n",
	"lib/systemd/system/multi-user.target": "[Unit]\n",
}

func read(t *testing.T, root, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPrepare(t *testing.T) {
	root := writeTree(t, golden)
	changes, err := Prepare(root)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range changes {
		got = append(got, c.Path)
	}
	want := []string{"/etc/fstab", netkeepUnitPath, "/etc/network/interfaces", "/etc/hostname", "/etc/hosts",
		"/etc/machine-id", "/var/lib/dbus/machine-id", "/etc/systemd/system/swap.target", "/etc/systemd/system/apt-daily.timer"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("changed %q, want %q", got, want)
	}

	fstab := read(t, root, "etc/fstab")
	for _, line := range []string{"#nbdboot# UUID=1234 / ext4", "#nbdboot# UUID=5678 none swap", "\ntmpfs /tmp tmpfs", "\nserver:/home /home nfs"} {
		if !strings.Contains(fstab, line) {
			t.Errorf("fstab lacks %q:\n%s", line, fstab)
		}
	}
	ifs := read(t, root, "etc/network/interfaces")
	for _, line := range []string{"\nauto lo\n", "#nbdboot# allow-hotplug enp3s0", "#nbdboot# iface enp3s0 inet dhcp", "#nbdboot# \tmetric 10", "\niface lo inet loopback"} {
		if !strings.Contains(ifs, line) {
			t.Errorf("interfaces lacks %q:\n%s", line, ifs)
		}
	}
	if h := read(t, root, "etc/hostname"); h != "" {
		t.Errorf("hostname = %q, want empty", h)
	}
	if h := read(t, root, "etc/hosts"); h != "127.0.0.1\tlocalhost\n" {
		t.Errorf("hosts = %q", h)
	}
	if id := read(t, root, "etc/machine-id"); id != "" {
		t.Errorf("machine-id = %q, want empty", id)
	}
	for p, target := range map[string]string{
		"var/lib/dbus/machine-id":                                         "/etc/machine-id",
		"etc/systemd/system/swap.target":                                  "/dev/null",
		"etc/systemd/system/apt-daily.timer":                              "/dev/null",
		"etc/systemd/system/sysinit.target.wants/nbdboot-netkeep.service": netkeepUnitPath,
	} {
		if got, err := os.Readlink(filepath.Join(root, p)); err != nil || got != target {
			t.Errorf("%s -> %q (%v), want -> %s", p, got, err, target)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system/fstrim.timer")); err == nil {
		t.Error("fstrim.timer masked; only apt's timers are")
	}
	if fi, err := os.Stat(filepath.Join(root, netkeepScriptPath)); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("netkeep script: %v %v", fi, err)
	}

	// A second run changes nothing.
	again, err := Prepare(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 0 {
		t.Errorf("second Prepare changed %v", again)
	}
}

// TestPrepareLinkedClone: edits replace files, so a hard-link clone's
// original keeps its content.
func TestPrepareLinkedClone(t *testing.T) {
	orig := writeTree(t, golden)
	clone := t.TempDir()
	if err := filepath.Walk(orig, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(orig, p)
		dst := filepath.Join(clone, rel)
		switch {
		case fi.IsDir():
			return os.MkdirAll(dst, 0o755)
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			return os.Symlink(l, dst)
		}
		return os.Link(p, dst)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := Prepare(clone); err != nil {
		t.Fatal(err)
	}
	for p, c := range golden {
		if got := read(t, orig, p); got != c {
			t.Errorf("original %s changed: %q", p, got)
		}
	}
}

func TestPrepareMinimal(t *testing.T) {
	// A tree without fstab, hostname, D-Bus or apt: only what applies.
	root := writeTree(t, map[string]string{"etc/os-release": "ID=debian\n"})
	changes, err := Prepare(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if strings.Contains(c.Path, "dbus") || strings.Contains(c.Path, "apt") || c.Path == "/etc/hostname" {
			t.Errorf("unexpected change %s", c)
		}
	}
	if !strings.HasPrefix(read(t, root, "etc/fstab"), fstabHeader) {
		t.Error("no fstab written")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"4096": 4096, "512M": 512 << 20, "2G": 2 << 30, "2GiB": 2 << 30, "1t": 1 << 40, "64k": 64 << 10} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1G", "1.5G", "G", "99999999999T", "12X"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}

func TestMountsUnder(t *testing.T) {
	mi := filepath.Join(t.TempDir(), "mountinfo")
	os.WriteFile(mi, []byte(
		"22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"+
			"30 22 0:5 / /srv/lab\\040root/proc rw - proc proc rw\n"+
			"31 22 0:6 / /srv/lab\\040root rw - ext4 /dev/sdb1 rw\n"+
			"32 22 0:7 / /srv/lab\\040rootx/dev rw - devtmpfs udev rw\n"), 0o644)
	got, err := mountsUnder(mi, "/srv/lab root")
	if err != nil || len(got) != 1 || got[0] != "/srv/lab root/proc" {
		t.Fatalf("mountsUnder = %q, %v; want [/srv/lab root/proc]", got, err)
	}
}
