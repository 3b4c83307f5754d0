package labimage

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Formats of the image.
const (
	Ext4     = "ext4"     // writable: one machine, or per-client copy-on-write, or read-only under an overlay
	Squashfs = "squashfs" // read-only, compressed: under nbdboot.overlay=tmpfs
)

// Options say what Build makes.
type Options struct {
	Dir    string // the root directory; never modified
	Out    string // the image file, replaced by rename when complete
	Format string // Ext4 (default) or Squashfs
	// Size of an ext4 image in bytes; 0 sizes it from the tree (a quarter
	// more than the files, plus 128 MiB, in 64 MiB steps).
	Size int64
	// Mountinfo is read to refuse a tree with filesystems mounted in it
	// (a chroot's /proc); default /proc/self/mountinfo.
	Mountinfo string
	// Stderr receives the tools' messages; nil discards them.
	Stderr io.Writer
}

// Build makes the image o describes and returns what it changed relative
// to the tree. On error no image is left at o.Out (a previous one stays).
func Build(ctx context.Context, o Options) ([]Change, error) {
	if o.Format == "" {
		o.Format = Ext4
	}
	if o.Format != Ext4 && o.Format != Squashfs {
		return nil, fmt.Errorf("image format %q: want %s or %s", o.Format, Ext4, Squashfs)
	}
	if o.Size != 0 && o.Format != Ext4 {
		return nil, fmt.Errorf("image size: only for %s (squashfs is as large as its content)", Ext4)
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("image of %s: %w", o.Dir, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "etc")); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("image of %s: not a root directory (no etc/)", dir)
	}
	mi := o.Mountinfo
	if mi == "" {
		mi = "/proc/self/mountinfo"
	}
	if m, err := mountsUnder(mi, dir); err != nil {
		return nil, err
	} else if len(m) > 0 {
		return nil, fmt.Errorf("image of %s: filesystems are mounted in it (%s): unmount them first", dir, strings.Join(m, ", "))
	}
	out, err := filepath.Abs(o.Out)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", o.Out, err)
	}
	if strings.HasPrefix(out, dir+string(filepath.Separator)) {
		return nil, fmt.Errorf("image %s: inside the tree %s", out, dir)
	}
	stderr := o.Stderr
	if stderr == nil {
		stderr = io.Discard
	}

	stage, err := os.MkdirTemp(filepath.Dir(out), ".nbdboot-image-tree-")
	if err != nil {
		return nil, fmt.Errorf("image %s: staging directory: %w", out, err)
	}
	defer os.RemoveAll(stage)
	if err := clone(ctx, dir, stage, stderr); err != nil {
		return nil, err
	}
	changes, err := Prepare(stage)
	if err != nil {
		return changes, fmt.Errorf("prepare %s: %w", dir, err)
	}
	if m, _ := filepath.Glob(filepath.Join(stage, "lib/modules/*/modules.dep")); len(m) == 0 {
		fmt.Fprintf(stderr, "nbdboot image: note: %s has no kernel modules (lib/modules/VERSION): drivers the initramfs lacks will not load; install the kernel package the initramfs was built from\n", dir)
	}

	tmp := out + ".new"
	os.Remove(tmp)
	defer os.Remove(tmp)
	var cmd *exec.Cmd
	switch o.Format {
	case Ext4:
		size := o.Size
		if size == 0 {
			used, err := treeSize(stage)
			if err != nil {
				return changes, err
			}
			size = autoSize(used)
		}
		cmd = exec.CommandContext(ctx, "mkfs.ext4", "-q", "-F", "-b", "4096", "-L", "nbdroot",
			"-E", "root_owner=0:0", "-d", stage, tmp, fmt.Sprintf("%dk", size/1024))
	case Squashfs:
		cmd = exec.CommandContext(ctx, "mksquashfs", stage, tmp, "-noappend", "-quiet", "-no-progress", "-comp", "zstd")
	}
	if o.Format == Ext4 { // mkfs.ext4 announces a file it creates
		if err := os.WriteFile(tmp, nil, 0o644); err != nil {
			return changes, fmt.Errorf("image %s: %w", out, err)
		}
	}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return changes, fmt.Errorf("image %s: %s: %w", out, cmd.Args[0], err)
	}
	if err := syncFile(tmp); err != nil {
		return changes, err
	}
	if err := os.Rename(tmp, out); err != nil {
		return changes, fmt.Errorf("image %s: %w", out, err)
	}
	return changes, nil
}

// clone copies tree src into the empty directory dst: hard links (only
// the directories are new) when both are on one filesystem, else a full
// copy. Edits replace files, so src's inodes never change.
func clone(ctx context.Context, src, dst string, stderr io.Writer) error {
	link := exec.CommandContext(ctx, "cp", "-a", "-l", src+"/.", dst+"/")
	msg, err := link.CombinedOutput()
	if err == nil {
		return nil
	}
	fmt.Fprintf(stderr, "nbdboot image: hard links from %s not possible (%s); copying it\n", src, firstLine(msg))
	if err := emptyDir(dst); err != nil {
		return err
	}
	cp := exec.CommandContext(ctx, "cp", "-a", src+"/.", dst+"/")
	if msg, err := cp.CombinedOutput(); err != nil {
		return fmt.Errorf("copy %s: %w: %s", src, err, firstLine(msg))
	}
	return nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

func emptyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// treeSize is the space the tree's files take, each inode counted once.
func treeSize(root string) (int64, error) {
	seen := map[uint64]bool{}
	var total int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			total += fi.Size()
			return nil
		}
		if seen[st.Ino] {
			return nil
		}
		seen[st.Ino] = true
		total += max(st.Blocks*512, 4096)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", root, err)
	}
	return total, nil
}

// autoSize is the ext4 size for a tree using used bytes: a quarter more,
// plus 128 MiB, rounded up to 64 MiB.
func autoSize(used int64) int64 {
	const step = 64 << 20
	n := used + used/4 + 128<<20
	return (n + step - 1) / step * step
}

func syncFile(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("sync %s: %w", p, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", p, err)
	}
	return nil
}

// mountsUnder lists the mount points strictly inside dir, from a
// mountinfo file (proc(5)).
func mountsUnder(mountinfo, dir string) ([]string, error) {
	f, err := os.Open(mountinfo)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", mountinfo, err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", mountinfo, err)
	}
	return out, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			if v, ok := octal(s[i+1 : min(i+4, len(s))]); ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func octal(s string) (byte, bool) {
	if len(s) != 3 {
		return 0, false
	}
	var v int
	for _, c := range s {
		if c < '0' || c > '7' {
			return 0, false
		}
		v = v*8 + int(c-'0')
	}
	return byte(v), v < 256
}
