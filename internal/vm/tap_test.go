package vm

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// TestTapNetNS boots a guest on a tap device of a lab network (NewLab: a
// namespace the test creates, with a bridge), with a server listening in
// the same namespace (Lab.Listen).
func TestTapNetNS(t *testing.T) {
	kernel, root := Kernel(t), KernelRoot(t)
	initrd := smokeInitramfs(t, root, "virtio_pci", "virtio_net")
	lab := NewLab(t, 1)
	addr := net.JoinHostPort(lab.Server, "10809")
	ln, err := lab.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "hello tap\n")
			c.Close()
		}
	}()

	m := Start(t, Options{
		Kernel:    kernel,
		Initramfs: initrd,
		Cmdline:   fmt.Sprintf("quiet testinit.net=%s testinit.ip=%s/%d", addr, LabGuestIP(0), LabPrefix),
		NetNS:     lab.NS,
		NICs:      []NIC{{Tap: lab.Taps[0]}},
	})
	m.ExpectLine(`^NBDBOOT-VM-NET hello tap$`, 60*time.Second)
	m.ExpectLine(`^NBDBOOT-VM-NET hello tap$`, 30*time.Second)
	m.WaitExit(30 * time.Second)
}
