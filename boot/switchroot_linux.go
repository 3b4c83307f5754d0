package boot

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// SpecialMounts move from the initramfs into the new root.
var SpecialMounts = []string{"/dev", "/proc", "/sys", "/run"}

// DefaultInits are tried, like the kernel does, when init= is absent or
// does not exist.
var DefaultInits = []string{"/sbin/init", "/etc/init", "/bin/init", "/bin/sh"}

// RootSwitcher is the real switch_root, in u-root's order (pkg/mount
// switch_root_linux.go): move the special mounts into the new root, chdir
// there, keep a handle on the old root, move the new root onto /, chroot
// ".", chdir "/", start the supervisor, delete the initramfs's files, and
// execute init with its arguments and a clean environment.
type RootSwitcher struct {
	Log *Logger
}

// Switch switches root; it returns only on failure.
func (s RootSwitcher) Switch(spec SwitchSpec) error {
	init, err := FindInit(spec.NewRoot, spec.Init)
	if err != nil {
		return err
	}
	if spec.Init != "" && init != spec.Init {
		s.Log.Printf("switch_root: %s is not an executable in the new root; using %s", spec.Init, init)
	}
	if err := s.moveSpecialMounts(spec.NewRoot); err != nil {
		return err
	}
	if err := unix.Chdir(spec.NewRoot); err != nil {
		return fmt.Errorf("chdir %s: %w", spec.NewRoot, err)
	}
	oldRoot, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open old root: %w", err)
	}
	defer unix.Close(oldRoot)
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move %s to /: %w", spec.NewRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot %s: %w", spec.NewRoot, err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir / in the new root: %w", err)
	}
	if spec.AfterChroot != nil {
		if err := spec.AfterChroot(); err != nil {
			return err
		}
	}
	s.deleteOldRoot(oldRoot)
	argv := append([]string{init}, spec.Args...)
	if err := unix.Exec(init, argv, spec.Env); err != nil {
		return fmt.Errorf("exec %s: %w", init, err)
	}
	return nil
}

// moveSpecialMounts moves /dev, /proc, /sys and /run under newRoot,
// skipping those that are not mount points.
func (s RootSwitcher) moveSpecialMounts(newRoot string) error {
	var root unix.Stat_t
	if err := unix.Stat("/", &root); err != nil {
		return fmt.Errorf("stat /: %w", err)
	}
	for _, m := range SpecialMounts {
		var st unix.Stat_t
		if err := unix.Stat(m, &st); err != nil || st.Dev == root.Dev {
			continue // absent or not a mount point
		}
		dst := path.Join(newRoot, m)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			s.Log.Printf("switch_root: %s: %v; detaching %s", dst, err, m)
			unix.Unmount(m, unix.MNT_DETACH)
			continue
		}
		if err := unix.Mount(m, dst, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("move %s to %s: %w", m, dst, err)
		}
	}
	return nil
}

// deleteOldRoot frees the initramfs's memory, but only when the old root
// really is an initramfs (ramfs or tmpfs), never a disk.
func (s RootSwitcher) deleteOldRoot(fd int) {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		s.Log.Printf("switch_root: statfs old root: %v; not deleting it", err)
		return
	}
	if fs.Type != unix.RAMFS_MAGIC && fs.Type != unix.TMPFS_MAGIC {
		s.Log.Printf("switch_root: old root is not an initramfs (fs type %#x); not deleting it", fs.Type)
		return
	}
	if err := DeleteContents(fd); err != nil {
		s.Log.Printf("switch_root: delete the initramfs: %v", err)
	}
}

// FindInit returns the init to execute in newRoot: the requested one if
// it exists there, else the first of DefaultInits. Symbolic links are
// followed inside newRoot, as they will resolve after the switch.
func FindInit(newRoot, requested string) (string, error) {
	cands := DefaultInits
	if requested != "" {
		cands = append([]string{requested}, DefaultInits...)
	}
	for _, c := range cands {
		if !path.IsAbs(c) {
			continue
		}
		p, err := ResolveIn(newRoot, c)
		if err != nil {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return c, nil
		}
	}
	return "", fmt.Errorf("no init in %s (tried %v)", newRoot, cands)
}

// maxLinks bounds symbolic link resolution, like the kernel's 40.
const maxLinks = 40

// ResolveIn resolves p as if root were /, following symbolic links (an
// absolute target restarts at root, ".." stops at root), and returns the
// path on the current file system.
func ResolveIn(root, p string) (string, error) {
	links := 0
	resolved := "/"
	rest := path.Clean("/" + p)[1:]
	for rest != "" {
		var name string
		name, rest, _ = cutSlash(rest)
		next := path.Join(resolved, name)
		fi, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			resolved = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("resolve %s in %s: %w", p, root, unix.ELOOP)
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if !path.IsAbs(target) {
			target = path.Join(resolved, target)
		}
		rest = path.Join(path.Clean("/" + target)[1:], rest)
		if rest == "." {
			rest = ""
		}
		resolved = "/"
	}
	return filepath.Join(root, resolved), nil
}

func cutSlash(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// DeleteContents deletes everything in the directory open as fd, without
// descending into other file systems (mount points stay) and without
// following symbolic links. It is best effort: what cannot be deleted is
// skipped; the first error is returned at the end.
func DeleteContents(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat directory: %w", err)
	}
	return deleteIn(fd, st.Dev)
}

func deleteIn(fd int, dev uint64) error {
	dup, err := unix.Dup(fd)
	if err != nil {
		return fmt.Errorf("dup: %w", err)
	}
	dir := os.NewFile(uintptr(dup), "dir")
	names, err := dir.Readdirnames(-1)
	dir.Close()
	if err != nil {
		return fmt.Errorf("read directory: %w", err)
	}
	var first error
	keep := func(err error) {
		if first == nil {
			first = err
		}
	}
	for _, name := range names {
		if err := deleteEntry(fd, dev, name); err != nil {
			keep(err)
		}
	}
	return first
}

func deleteEntry(parent int, dev uint64, name string) error {
	child, err := unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		// A file, a symbolic link or a device node: unlink it.
		if err := unix.Unlinkat(parent, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unlink %s: %w", name, err)
		}
		return nil
	}
	defer unix.Close(child)
	var st unix.Stat_t
	if err := unix.Fstat(child, &st); err != nil {
		return fmt.Errorf("stat %s: %w", name, err)
	}
	if st.Dev != dev {
		return nil // a mount point: leave it
	}
	first := deleteIn(child, dev)
	if err := unix.Unlinkat(parent, name, unix.AT_REMOVEDIR); err != nil && first == nil {
		first = fmt.Errorf("rmdir %s: %w", name, err)
	}
	return first
}
