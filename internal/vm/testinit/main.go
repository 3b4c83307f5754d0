// Command testinit is a minimal /init for the harness's smoke test: it
// prints a marker with the kernel's uptime and powers the machine off. With
// testinit.echo on the kernel command line it first echoes one console line
// back ("NBDBOOT-VM-ECHO line"). With testinit.net=IP:PORT it loads the
// virtio-net driver, configures eth0 as 10.0.2.15/24 (qemu user
// networking; testinit.ip=ADDR/PREFIX for another, e.g. on a lab), connects to IP:PORT and prints the first line it reads
// ("NBDBOOT-VM-NET line"), twice, over two connections. With
// testinit.root=vda (or vda1) it mounts that ext4 virtio disk and switches
// root to its /sbin/init (scripts/root-init.sh in the test images).
package main

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "testinit: %v\n", err)
	}
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Fprintf(os.Stderr, "testinit: power off: %v\n", err)
	}
	select {} // PID 1 must not exit
}

func run() error {
	if err := os.MkdirAll("/proc", 0o755); err != nil {
		return err
	}
	if err := unix.Mount("proc", "/proc", "proc", 0, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	up, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return err
	}
	fields := strings.Fields(string(up))
	fmt.Printf("NBDBOOT-VM-SMOKE ok pid=%d uptime=%s\n", os.Getpid(), fields[0])
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	args := strings.Fields(string(cmdline))
	cidr := "10.0.2.15/24"
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "testinit.ip="); ok {
			cidr = v
		}
	}
	for _, a := range args {
		if addr, ok := strings.CutPrefix(a, "testinit.net="); ok {
			if err := netCheck(addr, cidr); err != nil {
				return err
			}
		}
	}
	for _, a := range args {
		if dev, ok := strings.CutPrefix(a, "testinit.root="); ok {
			return switchRoot(dev)
		}
	}
	if slices.Contains(args, "testinit.echo") {
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil {
			return fmt.Errorf("read console: %w", err)
		}
		fmt.Printf("NBDBOOT-VM-ECHO %s\n", strings.TrimSpace(line))
	}
	return nil
}
