package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// netCheck brings eth0 up with address cidr and reads a line from addr
// over two successive connections.
func netCheck(addr, cidr string) error {
	if err := loadModules("virtio_pci", "virtio_net"); err != nil {
		return err
	}
	link, err := waitLink("eth0", 10*time.Second)
	if err != nil {
		return err
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return err
	}
	if err := netlink.AddrReplace(link, a); err != nil {
		return fmt.Errorf("address eth0: %w", err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("up eth0: %w", err)
	}
	for i := 0; i < 2; i++ {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return err
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil {
			return fmt.Errorf("read from %s: %w", addr, err)
		}
		fmt.Printf("NBDBOOT-VM-NET %s\n", strings.TrimSpace(line))
	}
	return nil
}

// waitLink waits for the driver to register name, using a netlink
// subscription rather than polling.
func waitLink(name string, timeout time.Duration) (netlink.Link, error) {
	ch, done := make(chan netlink.LinkUpdate), make(chan struct{})
	defer close(done)
	if err := netlink.LinkSubscribe(ch, done); err != nil {
		return nil, err
	}
	if l, err := netlink.LinkByName(name); err == nil {
		return l, nil
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case u := <-ch:
			if u.Attrs().Name == name {
				return u.Link, nil
			}
		case <-timer.C:
			return nil, fmt.Errorf("no link %s after %v", name, timeout)
		}
	}
}

// loadModules loads names and their modules.dep dependencies, deepest
// first.
func loadModules(names ...string) error {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return err
	}
	dir := filepath.Join("/lib/modules", unix.ByteSliceToString(uts.Release[:]))
	b, err := os.ReadFile(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return err
	}
	deps := make(map[string][]string) // module name -> path, deps...
	for _, line := range strings.Split(string(b), "\n") {
		p, rest, ok := strings.Cut(line, ":")
		if ok {
			deps[modName(p)] = append([]string{p}, strings.Fields(rest)...)
		}
	}
	loaded := make(map[string]bool)
	var load func(name string) error
	load = func(name string) error {
		if loaded[name] {
			return nil
		}
		loaded[name] = true
		d, ok := deps[name]
		if !ok {
			return fmt.Errorf("module %s: not in modules.dep", name)
		}
		for _, p := range d[1:] {
			if err := load(modName(p)); err != nil {
				return err
			}
		}
		f, err := os.Open(filepath.Join(dir, d[0]))
		if err != nil {
			return err
		}
		defer f.Close()
		if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && err != unix.EEXIST {
			return fmt.Errorf("load module %s: %w", name, err)
		}
		return nil
	}
	for _, n := range names {
		if err := load(n); err != nil {
			return err
		}
	}
	return nil
}

func modName(p string) string {
	return strings.ReplaceAll(strings.TrimSuffix(filepath.Base(p), ".ko"), "-", "_")
}
