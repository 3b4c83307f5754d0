package vm

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nbdboot/nbdboot/internal/testutil"
)

// BuildDir is $NBDBOOT_BUILD, where `make kernel images initramfs` put the
// boot test inputs, or "" when unset.
func BuildDir() string { return os.Getenv("NBDBOOT_BUILD") }

// buildFile returns BuildDir()/rel, or marks the test Missing.
func buildFile(t testing.TB, rel, target string) string {
	t.Helper()
	dir := BuildDir()
	if dir == "" {
		testutil.Missing(t, "NBDBOOT_BUILD is not set: run the boot tests through `make test` (or `make %s` and set NBDBOOT_BUILD=$PWD/build)", target)
		return ""
	}
	p := filepath.Join(dir, rel)
	if _, err := os.Stat(p); err != nil {
		testutil.Missing(t, "%s not built (run `make %s`): %v", p, target, err)
		return ""
	}
	return p
}

// Kernel is the extracted ELF kernel, build/kernel/vmlinux.
func Kernel(t testing.TB) string {
	t.Helper()
	return buildFile(t, "kernel/vmlinux", "kernel")
}

// BzImage is the kernel as Debian ships it, build/kernel/bzImage, for
// boot loaders (the tests boot the faster vmlinux with -kernel).
func BzImage(t testing.TB) string {
	t.Helper()
	return buildFile(t, "kernel/bzImage", "kernel")
}

// KernelRoot is the unpacked kernel package holding lib/modules/VERSION.
func KernelRoot(t testing.TB) string {
	t.Helper()
	return buildFile(t, "kernel/root", "kernel")
}

// Initramfs is nbdboot's initramfs, build/initramfs.cpio.gz.
func Initramfs(t testing.TB) string {
	t.Helper()
	return buildFile(t, "initramfs.cpio.gz", "initramfs")
}

// Image is a test disk image under build/images: root.ext4,
// root-part.img or root.squashfs.
func Image(t testing.TB, name string) string {
	t.Helper()
	return buildFile(t, filepath.Join("images", name), "images")
}

// CopyImage copies Image(t, name) into t.TempDir(), sparse, for a test
// that lets a guest or server write to it.
func CopyImage(t testing.TB, name string) string {
	t.Helper()
	src := Image(t, name)
	dst := filepath.Join(t.TempDir(), name)
	if err := copySparse(dst, src); err != nil {
		t.Fatalf("copy image %s: %v", name, err)
	}
	return dst
}

// DistroRoot is the Debian systemd root directory `make distro` built,
// build/distro/root, for tests that make images of it.
func DistroRoot(t testing.TB) string {
	t.Helper()
	return buildFile(t, "distro/root", "distro")
}

// SecondKernel is Debian's backports kernel and the initramfs built for
// it (build/kernel-bpo/vmlinux, build/initramfs-bpo.cpio.gz). When the
// apt mirror serves no backports, `make kernel` wrote
// build/kernel-bpo/unavailable instead: ok is false and why says so.
func SecondKernel(t testing.TB) (kernel, initramfs string, ok bool, why string) {
	t.Helper()
	if b, err := os.ReadFile(filepath.Join(BuildDir(), "kernel-bpo", "unavailable")); err == nil {
		return "", "", false, string(b)
	}
	return buildFile(t, "kernel-bpo/vmlinux", "kernel"), buildFile(t, "initramfs-bpo.cpio.gz", "initramfs"), true, ""
}
