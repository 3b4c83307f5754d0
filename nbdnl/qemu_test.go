package nbdnl

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/testutil"
	"golang.org/x/sys/unix"
)

// guestResult is the console line the guest prints when its tests end.
const guestResult = "NBDNL-GUEST-RESULT: "

func TestMain(m *testing.M) {
	if os.Getpid() == 1 {
		guestInit(m) // never returns
	}
	os.Exit(m.Run())
}

// guestInit is /init of TestKernelInQemu's initramfs: the test binary
// itself. It mounts the pseudo filesystems, loads nbd.ko, runs TestKernel
// and powers the machine off.
func guestInit(m *testing.M) {
	result := "FAIL"
	defer func() {
		fmt.Printf("\n%s%s\n", guestResult, result)
		unix.Sync()
		unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	}()
	for _, mnt := range []struct{ fstype, dir string }{{"proc", "/proc"}, {"sysfs", "/sys"}, {"devtmpfs", "/dev"}} {
		os.MkdirAll(mnt.dir, 0o755)
		if err := unix.Mount(mnt.fstype, mnt.dir, mnt.fstype, 0, ""); err != nil {
			fmt.Printf("mount %s: %v\n", mnt.dir, err)
			return
		}
	}
	if err := loopbackUp(); err != nil {
		fmt.Printf("bring lo up: %v\n", err)
		return
	}
	f, err := os.Open("/nbd.ko")
	if err != nil {
		fmt.Printf("open nbd.ko: %v\n", err)
		return
	}
	if err := unix.FinitModule(int(f.Fd()), "nbds_max=4", 0); err != nil {
		fmt.Printf("load nbd.ko: %v\n", err)
		return
	}
	f.Close()
	os.Setenv(guestEnv, "1")
	os.Args = []string{os.Args[0], "-test.run=^TestKernel$", "-test.v", "-test.timeout=3m"}
	if m.Run() == 0 {
		result = "PASS"
	}
}

// loopbackUp sets IFF_UP on lo, for the guest's TCP test.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// buildDir is where `make` puts the kernel (NBDBOOT_BUILD, else the
// repository's build/).
func buildDir() string {
	if d := os.Getenv("NBDBOOT_BUILD"); d != "" {
		return d
	}
	return filepath.Join("..", "build")
}

// TestKernelInQemu boots the Debian kernel under qemu with an initramfs
// made of this package's test binary (as /init) and nbd.ko, and runs
// TestKernel there against the real nbd driver.
func TestKernelInQemu(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	qemu := testutil.RequireTool(t, "qemu-system-x86_64")
	kdir := filepath.Join(buildDir(), "kernel")
	vmlinux := filepath.Join(kdir, "vmlinux")
	version, err := os.ReadFile(filepath.Join(kdir, "version"))
	if err != nil {
		testutil.Missing(t, "no kernel in %s (run `make kernel`): %v", kdir, err)
	}
	nbdko := filepath.Join(kdir, "root/lib/modules", strings.TrimSpace(string(version)), "kernel/drivers/block/nbd.ko")
	for _, p := range []string{vmlinux, nbdko} {
		if _, err := os.Stat(p); err != nil {
			testutil.Missing(t, "kernel file missing (run `make kernel`): %v", err)
		}
	}

	dir := t.TempDir()
	initBin := filepath.Join(dir, "init")
	build := exec.Command("go", "test", "-c", "-o", initBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the guest test binary: %v\n%s", err, out)
	}
	initrd := filepath.Join(dir, "initrd.cpio")
	if err := writeInitramfs(initrd, initBin, nbdko); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-accel", "tcg", "-m", "512", "-smp", "1",
		"-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot",
		"-kernel", vmlinux, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 quiet rdinit=/init")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	result, console := readConsole(out)
	if result != "PASS" {
		t.Errorf("guest result %q; console:\n%s", result, console)
	} else {
		t.Logf("guest console:\n%s", console)
	}
}

// readConsole collects the console until the guest prints its result line
// or the console ends.
func readConsole(r io.Reader) (result, console string) {
	var b strings.Builder
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		b.WriteString(line + "\n")
		if res, ok := strings.CutPrefix(line, guestResult); ok {
			return res, b.String()
		}
	}
	return "", b.String()
}

// writeInitramfs writes a newc cpio archive with /init, /nbd.ko, the
// mount points and /dev/console (the kernel opens it for init's stdio).
func writeInitramfs(path, initBin, nbdko string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	ino := 0
	entry := func(name string, mode uint32, rdevMajor, rdevMinor int, data []byte) {
		ino++
		fmt.Fprintf(w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
		w.WriteString(name + "\x00")
		pad := func(n int) { w.Write(make([]byte, (4-n%4)%4)) }
		pad(110 + len(name) + 1)
		w.Write(data)
		pad(len(data))
	}
	for _, d := range []string{"dev", "proc", "sys"} {
		entry(d, unix.S_IFDIR|0o755, 0, 0, nil)
	}
	entry("dev/console", unix.S_IFCHR|0o600, 5, 1, nil)
	for _, file := range []struct {
		name, src string
	}{{"init", initBin}, {"nbd.ko", nbdko}} {
		data, err := os.ReadFile(file.src)
		if err != nil {
			return err
		}
		entry(file.name, unix.S_IFREG|0o755, 0, 0, data)
	}
	entry("TRAILER!!!", 0, 0, 0, nil)
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}
