package vm

import (
	"testing"
	"time"
)

// bootRoot boots testinit switching to the ext4 root on virtio disk dev of
// image, with the root init's cmdline parameters.
func bootRoot(t *testing.T, initrd, image, dev, params string) *Machine {
	t.Helper()
	return Start(t, Options{
		Initramfs: initrd,
		Cmdline:   "quiet testinit.root=" + dev + " " + params,
		Args:      []string{"-drive", "file=" + image + ",format=raw,if=virtio"},
	})
}

// TestImages boots the test root filesystems from build/images on a
// virtio disk: the whole-disk ext4 writes its marker file, a second boot
// finds it, and the partitioned image runs the write/read loop.
func TestImages(t *testing.T) {
	root := KernelRoot(t)
	ext4, part := CopyImage(t, "root.ext4"), CopyImage(t, "root-part.img")
	initrd := smokeInitramfs(t, root, "virtio_pci", "virtio_blk", "crc32c_generic", "ext4")
	value := RootValue("img1")

	m := bootRoot(t, initrd, ext4, "vda", "nbdtest.id=img1")
	m.ExpectLine(`^NBDBOOT-ROOT-INIT ok id=img1 mode=write root=/dev/vda ext4 rw`, 60*time.Second)
	m.ExpectLine(`^NBDBOOT-ROOT-WROTE id=img1 value=`+value+`$`, 30*time.Second)
	t.Logf("root init wrote its file %v after qemu start", m.Since().Round(time.Millisecond))
	m.WaitExit(30 * time.Second)

	m = bootRoot(t, initrd, ext4, "vda", "nbdtest.id=img2 nbdtest.mode=check")
	m.ExpectLine(`^NBDBOOT-ROOT-CHECK id=img1 value=`+value+` $`, 60*time.Second)
	m.WaitExit(30 * time.Second)

	m = bootRoot(t, initrd, part, "vda1", "nbdtest.id=img3 nbdtest.mode=loop nbdtest.loops=2")
	m.ExpectLine(`^NBDBOOT-ROOT-INIT ok id=img3 mode=loop root=/dev/vda1 ext4`, 60*time.Second)
	m.ExpectLine(`^NBDBOOT-ROOT-LOOP 2 ok( |$)`, 60*time.Second)
	m.ExpectLine(`^NBDBOOT-ROOT-LOOP-DONE ok( |$)`, 30*time.Second)
	m.WaitExit(30 * time.Second)
}

func TestRootValue(t *testing.T) {
	// printf 'nbdboot:%s' img1 | sha256sum | cut -c1-16
	if got, want := RootValue("img1"), "e1c48b3cd5a4eb6f"; got != want {
		t.Fatalf("RootValue = %q, want %q", got, want)
	}
}
