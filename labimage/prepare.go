package labimage

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Change is one edit Prepare made, for the administrator.
type Change struct {
	Path string // in the root, e.g. /etc/fstab
	What string
}

func (c Change) String() string { return c.Path + ": " + c.What }

// tree edits a root directory by replacing files, never writing into an
// existing inode (the root may be a hard-link clone of the original).
type tree struct {
	root    string
	changes []Change
}

func (t *tree) path(p string) string { return filepath.Join(t.root, filepath.FromSlash(p)) }

func (t *tree) note(p, format string, args ...any) {
	t.changes = append(t.changes, Change{Path: p, What: fmt.Sprintf(format, args...)})
}

// read returns the content of p, or nil when p does not exist.
func (t *tree) read(p string) ([]byte, error) {
	b, err := os.ReadFile(t.path(p))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return b, nil
}

// write replaces p with data: a new file renamed over the old entry,
// keeping its mode and owner (default mode perm, owner root).
func (t *tree) write(p string, data []byte, perm os.FileMode) error {
	dst := t.path(p)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	uid, gid := 0, 0
	if fi, err := os.Lstat(dst); err == nil && fi.Mode().IsRegular() {
		perm = fi.Mode().Perm()
		uid, gid = owner(fi)
	}
	f, err := os.CreateTemp(filepath.Dir(dst), ".nbdboot-image-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	if err := errors.Join(werr, f.Chmod(perm), f.Close()); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", p, err)
	}
	// Ownership: only root can give files away; a non-root build keeps its own.
	if os.Geteuid() == 0 {
		if err := os.Lchown(tmp, uid, gid); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// symlink replaces p with a symbolic link to target.
func (t *tree) symlink(p, target string) error {
	dst := t.path(p)
	if cur, err := os.Readlink(dst); err == nil && cur == target {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("link %s: %w", p, err)
	}
	tmp := filepath.Join(filepath.Dir(dst), ".nbdboot-image-link")
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("link %s: %w", p, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("link %s: %w", p, err)
	}
	return nil
}

// mask masks systemd unit u (a link to /dev/null under /etc).
func (t *tree) mask(u, why string) error {
	p := "/etc/systemd/system/" + u
	if cur, err := os.Readlink(t.path(p)); err == nil && cur == "/dev/null" {
		return nil
	}
	if err := t.symlink(p, "/dev/null"); err != nil {
		return err
	}
	t.note(p, "masked: %s", why)
	return nil
}

// Prepare edits the root directory dir so that it boots as a diskless
// seat, replacing files rather than writing into them, and returns what
// it changed. Running it twice changes nothing the second time.
func Prepare(dir string) ([]Change, error) {
	t := &tree{root: dir}
	for _, step := range []func() error{t.fstab, t.network, t.hostname, t.machineID, t.swap, t.timers} {
		if err := step(); err != nil {
			return t.changes, err
		}
	}
	return t.changes, nil
}

// fstabHeader marks an fstab Prepare wrote.
const fstabHeader = "# nbdboot image:"

// fstab comments out the entries for local disks and swap and the root's:
// the root is mounted by nbdboot from the kernel command line (nbdroot=),
// and a lab machine's own disk is not part of the image. Virtual
// filesystems (tmpfs, proc...) and network mounts stay.
func (t *tree) fstab() error {
	const p = "/etc/fstab"
	old, err := t.read(p)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	out.WriteString(fstabHeader + " the root is mounted by nbdboot from the network block device\n")
	out.WriteString("# named on the kernel command line (nbdroot=); this machine's own disks are not used.\n")
	var dropped []string
	for _, line := range strings.Split(strings.TrimRight(string(old), "\n"), "\n") {
		if strings.HasPrefix(line, "# nbdboot image:") || strings.HasPrefix(line, "# named on the kernel command line") {
			continue
		}
		f := strings.Fields(line)
		if len(f) >= 3 && !strings.HasPrefix(f[0], "#") && localMount(f[0], f[1], f[2]) {
			out.WriteString("#nbdboot# " + line + "\n")
			dropped = append(dropped, f[1])
			continue
		}
		if line != "" || out.Len() > 0 {
			out.WriteString(line + "\n")
		}
	}
	if bytes.Equal(out.Bytes(), old) {
		return nil
	}
	if err := t.write(p, out.Bytes(), 0o644); err != nil {
		return err
	}
	if len(dropped) > 0 {
		t.note(p, "commented out the root, local disks and swap (%s)", strings.Join(dropped, ", "))
	} else {
		t.note(p, "no root entry: nbdboot mounts the root")
	}
	return nil
}

// localMount tells whether an fstab entry names a local disk, swap or
// the root (which nbdboot mounts).
func localMount(spec, dir, fstype string) bool {
	switch {
	case dir == "/" || fstype == "swap" || dir == "none" && fstype == "swap":
		return true
	case strings.HasPrefix(spec, "UUID="), strings.HasPrefix(spec, "PARTUUID="),
		strings.HasPrefix(spec, "LABEL="), strings.HasPrefix(spec, "PARTLABEL="),
		strings.HasPrefix(spec, "/dev/"):
		return true
	}
	return false
}

// hostname empties /etc/hostname (systemd then keeps the name DHCP gave
// the machine in the initramfs) and drops the old name from /etc/hosts.
func (t *tree) hostname() error {
	name, err := t.read("/etc/hostname")
	if err != nil {
		return err
	}
	old := strings.TrimSpace(string(name))
	if old == "" {
		return nil
	}
	if err := t.write("/etc/hostname", nil, 0o644); err != nil {
		return err
	}
	t.note("/etc/hostname", "emptied (was %q): each machine keeps the host name DHCP gives it", old)
	hosts, err := t.read("/etc/hosts")
	if err != nil || hosts == nil {
		return err
	}
	var out bytes.Buffer
	changed := false
	for _, line := range strings.SplitAfter(string(hosts), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && strings.HasPrefix(f[0], "127.0.1.") && contains(f[1:], old) {
			changed = true
			continue
		}
		out.WriteString(line)
	}
	if !changed {
		return nil
	}
	if err := t.write("/etc/hosts", out.Bytes(), 0o644); err != nil {
		return err
	}
	t.note("/etc/hosts", "dropped the 127.0.1.1 line for %q", old)
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// machineID empties /etc/machine-id: systemd makes a new one at every boot
// of a shared read-only image, and commits it on a writable per-client
// root. D-Bus's copy becomes a link to it.
func (t *tree) machineID() error {
	id, err := t.read("/etc/machine-id")
	if err != nil {
		return err
	}
	if len(id) > 0 {
		if err := t.write("/etc/machine-id", nil, 0o444); err != nil {
			return err
		}
		t.note("/etc/machine-id", "emptied: systemd makes one per machine at boot (kept where the root is per-client and writable)")
	}
	const dbus = "/var/lib/dbus/machine-id"
	if _, err := os.Lstat(t.path("/var/lib/dbus")); err != nil {
		return nil // no D-Bus
	}
	if cur, err := os.Readlink(t.path(dbus)); err == nil && cur == "/etc/machine-id" {
		return nil
	}
	if err := t.symlink(dbus, "/etc/machine-id"); err != nil {
		return err
	}
	t.note(dbus, "now a link to /etc/machine-id")
	return nil
}

// swap masks swap.target: no machine swaps onto its local disk or the
// network.
func (t *tree) swap() error {
	return t.mask("swap.target", "no swap on a diskless seat")
}

// timers masks apt's daily download and upgrade: a seat's software comes
// with the next image, and an upgrade under a tmpfs overlay fills memory.
func (t *tree) timers() error {
	for _, u := range []string{"apt-daily.timer", "apt-daily-upgrade.timer"} {
		if _, err := os.Stat(t.path("/lib/systemd/system/" + u)); err != nil {
			continue
		}
		if err := t.mask(u, "updates come with a new image"); err != nil {
			return err
		}
	}
	return nil
}
