package vm

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// TestUserNetForward boots a guest that connects twice to 10.0.2.100:10809;
// qemu's guestfwd relays each connection through socat to a listener on
// this machine's loopback.
func TestUserNetForward(t *testing.T) {
	kernel, root := Kernel(t), KernelRoot(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "hello %d\n", i)
			c.Close()
		}
	}()
	m := Start(t, Options{
		Kernel:    kernel,
		Initramfs: smokeInitramfs(t, root, "virtio_pci", "virtio_net"),
		Cmdline:   "quiet testinit.net=10.0.2.100:10809",
		NICs: []NIC{{User: &UserNet{Forwards: []Forward{
			{Guest: "10.0.2.100:10809", Host: ln.Addr().String()},
		}}}},
	})
	m.ExpectLine(`^NBDBOOT-VM-NET hello 0$`, 60*time.Second)
	m.ExpectLine(`^NBDBOOT-VM-NET hello 1$`, 30*time.Second)
	t.Logf("two relayed connections %v after qemu start", m.Since().Round(time.Millisecond))
	m.WaitExit(30 * time.Second)
}
