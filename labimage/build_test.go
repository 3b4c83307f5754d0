package labimage

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nbdboot/nbdboot/internal/testutil"
)

// TestBuild makes an ext4 and a squashfs image of a small tree and reads
// the prepared files back from them; the tree is unchanged.
func TestBuild(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4")
	testutil.RequireTool(t, "debugfs")
	root := writeTree(t, golden)
	out := filepath.Join(t.TempDir(), "lab.img")
	changes, err := Build(context.Background(), Options{Dir: root, Out: out, Size: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) == 0 {
		t.Error("no changes reported")
	}
	if fi, err := os.Stat(out); err != nil || fi.Size() != 32<<20 {
		t.Fatalf("image: %v %v, want 32 MiB", fi, err)
	}
	cat := exec.Command("debugfs", "-R", "cat /etc/fstab", out)
	b, err := cat.Output()
	if err != nil || !strings.HasPrefix(string(b), fstabHeader) {
		t.Errorf("fstab in the image: %q %v", b, err)
	}
	for p, c := range golden {
		if got := read(t, root, p); got != c {
			t.Errorf("tree's %s changed: %q", p, got)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".nbdboot-image-*")); len(m) > 0 {
		t.Errorf("staging left behind: %v", m)
	}

	if _, err := exec.LookPath("mksquashfs"); err == nil {
		sq := filepath.Join(t.TempDir(), "lab.squashfs")
		if _, err := Build(context.Background(), Options{Dir: root, Out: sq, Format: Squashfs}); err != nil {
			t.Fatal(err)
		}
		ls, err := exec.Command("unsquashfs", "-cat", sq, "etc/hostname").Output()
		if err != nil || len(ls) != 0 {
			t.Errorf("hostname in the squashfs: %q %v", ls, err)
		}
	}
}

func TestBuildRefuses(t *testing.T) {
	root := writeTree(t, golden)
	dir := t.TempDir()
	mi := filepath.Join(dir, "mountinfo")
	os.WriteFile(mi, []byte("30 22 0:5 / "+root+"/proc rw - proc proc rw\n"), 0o644)
	for name, o := range map[string]Options{
		"no etc":          {Dir: dir, Out: filepath.Join(dir, "x.img")},
		"bad format":      {Dir: root, Out: filepath.Join(dir, "x.img"), Format: "zip"},
		"size squashfs":   {Dir: root, Out: filepath.Join(dir, "x.img"), Format: Squashfs, Size: 1 << 20},
		"inside the tree": {Dir: root, Out: filepath.Join(root, "x.img")},
		"mounted proc":    {Dir: root, Out: filepath.Join(dir, "x.img"), Mountinfo: mi},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Build(context.Background(), o); err == nil {
				t.Fatal("Build accepted it")
			}
			if _, err := os.Stat(o.Out); err == nil {
				t.Error("an image was written")
			}
		})
	}
}

func TestAutoSize(t *testing.T) {
	if got := autoSize(100 << 20); got != 256<<20 {
		t.Errorf("autoSize(100 MiB) = %d MiB, want 256", got>>20)
	}
}
