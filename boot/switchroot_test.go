package boot

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nbdboot/nbdboot/internal/testutil"
	"golang.org/x/sys/unix"
)

// tree makes files, directories ("name/") and symlinks ("name -> target").
func tree(t *testing.T, root string, entries ...string) {
	t.Helper()
	for _, e := range entries {
		p := filepath.Join(root, e)
		var err error
		if name, target, ok := cutArrow(e); ok {
			p = filepath.Join(root, name)
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
				err = os.Symlink(target, p)
			}
		} else if e[len(e)-1] == '/' {
			err = os.MkdirAll(p, 0o755)
		} else if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
			err = os.WriteFile(p, []byte("x"), 0o755)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func cutArrow(s string) (string, string, bool) {
	for i := 0; i+4 <= len(s); i++ {
		if s[i:i+4] == " -> " {
			return s[:i], s[i+4:], true
		}
	}
	return "", "", false
}

func TestDeleteContents(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	tree(t, outside, "keep/precious")
	tree(t, root,
		"init", "bin/", "bbin/gosh", "lib/modules/6.1/kernel/nbd.ko",
		"escape -> "+filepath.Join(outside, "keep"), // must not be followed
		"bin/sh -> ../bbin/gosh",
		"empty/",
	)
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := DeleteContents(fd); err != nil {
		t.Fatal(err)
	}
	if names, _ := os.ReadDir(root); len(names) != 0 {
		t.Errorf("left %v", names)
	}
	if _, err := os.Stat(filepath.Join(outside, "keep/precious")); err != nil {
		t.Errorf("followed a symlink out of the tree: %v", err)
	}
}

// A mount point inside the tree is another file system: it stays, with
// its content.
func TestDeleteContentsStopsAtMounts(t *testing.T) {
	testutil.RequireRoot(t)
	root := t.TempDir()
	tree(t, root, "a/file", "mnt/")
	if err := unix.Mount("tmpfs", filepath.Join(root, "mnt"), "tmpfs", 0, ""); err != nil {
		testutil.Missing(t, "mount tmpfs: %v", err)
	}
	defer unix.Unmount(filepath.Join(root, "mnt"), unix.MNT_DETACH)
	tree(t, root, "mnt/kept")
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	DeleteContents(fd) // rmdir of the mount point fails: expected
	if _, err := os.Stat(filepath.Join(root, "mnt/kept")); err != nil {
		t.Errorf("descended into a mount: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "a")); !os.IsNotExist(err) {
		t.Errorf("a not deleted: %v", err)
	}
}

func TestFindInit(t *testing.T) {
	root := t.TempDir()
	tree(t, root,
		"lib/systemd/systemd",
		"sbin/init -> /lib/systemd/systemd", // absolute: resolves inside root
		"bin/sh",
		"bin/loop -> /bin/loop",
		"usr/bin/",
		"bin/bash -> ../usr/bin/missing",
	)
	os.WriteFile(filepath.Join(root, "bin/noexec"), []byte("x"), 0o644)
	for _, tc := range []struct{ requested, want string }{
		{"", "/sbin/init"},
		{"/bin/sh", "/bin/sh"},
		{"/bin/loop", "/sbin/init"},   // a link loop falls back
		{"/bin/bash", "/sbin/init"},   // dangling
		{"/bin/noexec", "/sbin/init"}, // not executable
		{"relative", "/sbin/init"},
	} {
		got, err := FindInit(root, tc.requested)
		if err != nil || got != tc.want {
			t.Errorf("FindInit(%q) = %q, %v; want %q", tc.requested, got, err, tc.want)
		}
	}
	os.Remove(filepath.Join(root, "sbin/init"))
	os.Remove(filepath.Join(root, "bin/sh"))
	if got, err := FindInit(root, ""); err == nil {
		t.Errorf("FindInit without init = %q", got)
	}
}

func TestResolveIn(t *testing.T) {
	root := t.TempDir()
	tree(t, root, "usr/lib/x", "lib -> usr/lib", "abs -> /usr/lib", "up -> ../../../usr")
	for _, tc := range []struct{ in, want string }{
		{"/lib/x", "/usr/lib/x"},
		{"/abs/x", "/usr/lib/x"},
		{"/up/lib/x", "/usr/lib/x"}, // ".." stops at the root
		{"/usr/lib/x", "/usr/lib/x"},
	} {
		got, err := ResolveIn(root, tc.in)
		if err != nil || got != filepath.Join(root, tc.want) {
			t.Errorf("ResolveIn(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestDefaultInitsLikeTheKernel(t *testing.T) {
	if !slices.Equal(DefaultInits, []string{"/sbin/init", "/etc/init", "/bin/init", "/bin/sh"}) {
		t.Errorf("DefaultInits = %v", DefaultInits)
	}
}
