package nbdnl

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// guestEnv is set by the guest init (TestMain as PID 1) of TestKernelInQemu.
const guestEnv = "NBDNL_IN_GUEST"

// servedPair is a socket pair: the kernel's end, and a memDisk serving the
// other end until it is closed.
type servedPair struct {
	kernel *os.File
	server net.Conn
	done   chan error
}

func newServedPair(t *testing.T, d *memDisk) *servedPair {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	sf := os.NewFile(uintptr(fds[1]), "server")
	server, err := net.FileConn(sf) // a duplicate on the poller: Close interrupts reads
	sf.Close()
	if err != nil {
		t.Fatal(err)
	}
	p := &servedPair{kernel: os.NewFile(uintptr(fds[0]), "kernel"), server: server, done: make(chan error, 1)}
	go func() { p.done <- d.serve(server) }()
	t.Cleanup(func() { p.kernel.Close(); server.Close() })
	return p
}

// directRead reads n bytes at off bypassing the page cache, so the read
// reaches the server.
func directRead(t *testing.T, dev string, off int64, n int) []byte {
	t.Helper()
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE) // page-aligned
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(buf)
	if _, err := f.ReadAt(buf, off); err != nil {
		t.Fatalf("read %s at %d: %v", dev, off, err)
	}
	return append([]byte(nil), buf...)
}

// TestKernel drives the real nbd driver: connect over netlink, I/O, status
// and sysfs, link-dead notification, reconfigure, disconnect, then the
// ioctl interface. It runs inside the qemu guest of TestKernelInQemu.
func TestKernel(t *testing.T) {
	if os.Getenv(guestEnv) != "1" {
		t.Skip("runs inside the qemu guest of TestKernelInQemu")
	}
	c, err := Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dead, err := c.WatchLinkDead(t.Context())
	if err != nil {
		t.Fatal(err)
	}

	disk := &memDisk{data: make([]byte, 1<<20)}
	pattern := bytes.Repeat([]byte("nbdnl!"), 4096/6+1)[:4096]
	disk.writeAt(0, mbrOnePartition(64, 1024))
	disk.writeAt(16384, pattern)
	disk.writeAt(65536, pattern[:2048])

	p1 := newServedPair(t, disk)
	idx, err := c.Connect(ConnectConfig{
		Size: 1 << 20, BlockSize: 512,
		ServerFlags:     ServerFlagHasFlags | ServerFlagSendFlush,
		DeadConnTimeout: 60 * time.Second,
		Sockets:         []*os.File{p1.kernel},
		BackendID:       "nbdnl-test",
	})
	if err != nil {
		t.Fatal(err)
	}
	p1.kernel.Close() // the kernel holds its own reference
	dev := DevicePath(idx)
	t.Logf("connected %s", dev)

	st, err := c.Status(&idx)
	if err != nil || len(st) != 1 || st[0] != (DeviceStatus{Index: idx, Connected: true}) {
		t.Errorf("Status(%d) = %+v, %v", idx, st, err)
	}
	sys := DefaultSys()
	if _, ok, err := sys.PID(idx); !ok || err != nil {
		t.Errorf("pid file: ok %v, %v", ok, err)
	}
	if b, _, err := sys.Backend(idx); b != "nbdnl-test" || err != nil {
		t.Errorf("backend = %q, %v", b, err)
	}
	if size, err := sys.Size(idx); size != 1<<20 || err != nil {
		t.Errorf("size = %d, %v", size, err)
	}

	if got := directRead(t, dev, 16384, 4096); !bytes.Equal(got, pattern) {
		t.Errorf("read through %s: got %q..., want the server's pattern", dev, got[:16])
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(pattern, 8192); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := disk.readAt(8192, 4096); !bytes.Equal(got, pattern) {
		t.Errorf("server did not receive the write")
	}
	if err := RescanPartitions(t.Context(), dev); err != nil {
		t.Errorf("RescanPartitions: %v", err)
	}
	if part, err := sys.WaitPartition(t.Context(), idx, 1, 10*time.Second); err != nil {
		t.Errorf("WaitPartition: %v", err)
	} else if size, err := partSize(part); err != nil || size != 1024*512 {
		t.Errorf("%s: %d bytes, %v; want %d", part, size, err, 1024*512)
	}

	// Kill the connection: the kernel reports LINK_DEAD, and RECONFIGURE
	// with a new socket brings the device back.
	if err := c.Reconfigure(idx, ReconfigureConfig{Sockets: []*os.File{os.Stdin}, BackendID: "other"}); !errors.Is(err, unix.EINVAL) {
		t.Errorf("Reconfigure with the wrong backend = %v, want EINVAL", err)
	}
	p1.server.Close() // the kernel's receive fails: the socket is dead
	select {
	case got := <-dead:
		if got != idx {
			t.Errorf("LINK_DEAD for %d, want %d", got, idx)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no LINK_DEAD notification")
	}
	p2 := newServedPair(t, disk)
	if err := c.Reconfigure(idx, ReconfigureConfig{Sockets: []*os.File{p2.kernel}, BackendID: "nbdnl-test"}); err != nil {
		t.Fatal(err)
	}
	p2.kernel.Close()
	if got := directRead(t, dev, 65536, 4096); !bytes.Equal(got[:2048], pattern[:2048]) {
		t.Errorf("read after reconfigure: got %q...", got[:16])
	}

	if err := c.Disconnect(idx); err != nil {
		t.Fatal(err)
	}
	err = waitFor(t.Context(), 30*time.Second, func() (bool, error) {
		st, err := c.Status(&idx)
		return err == nil && len(st) == 1 && !st[0].Connected, err
	})
	if err != nil {
		t.Errorf("device still connected after Disconnect: %v", err)
	}

	testKernelMultiConn(t, c)
	testKernelTCP(t, c)
	testKernelIoctl(t, sys)
}

// testKernelTCP hands the kernel a loopback TCP socket taken from a
// net.TCPConn with File, as `nbdboot attach` does.
func testKernelTCP(t *testing.T, c *Conn) {
	disk := &memDisk{data: make([]byte, 1<<20)}
	disk.writeAt(4096, []byte("over tcp"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		disk.serve(conn)
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	f, err := conn.(*net.TCPConn).File()
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	idx, err := c.Connect(ConnectConfig{Size: 1 << 20, Sockets: []*os.File{f}})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := directRead(t, DevicePath(idx), 4096, 4096); !bytes.HasPrefix(got, []byte("over tcp")) {
		t.Errorf("tcp read %q", got[:16])
	}
	if err := c.Disconnect(idx); err != nil {
		t.Fatal(err)
	}
}

// mbrOnePartition returns a 512-byte MBR with one Linux partition.
func mbrOnePartition(startLBA, sectors uint32) []byte {
	b := make([]byte, 512)
	e := b[446:462]                                // first partition entry
	e[4] = 0x83                                    // type: Linux
	binary.LittleEndian.PutUint32(e[8:], startLBA) // first sector
	binary.LittleEndian.PutUint32(e[12:], sectors) // sector count
	b[510], b[511] = 0x55, 0xaa                    // boot signature
	return b
}

// partSize returns a block device's size via seeking to its end.
func partSize(dev string) (int64, error) {
	f, err := os.Open(dev)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Seek(0, io.SeekEnd)
}

// testKernelMultiConn connects one device with two sockets (the export
// allows multiple connections) and reads through it.
func testKernelMultiConn(t *testing.T, c *Conn) {
	disk := &memDisk{data: make([]byte, 1<<20)}
	disk.writeAt(0, []byte("two sockets"))
	a, b := newServedPair(t, disk), newServedPair(t, disk)
	idx, err := c.Connect(ConnectConfig{
		Size: 1 << 20, BlockSize: 4096,
		ServerFlags: ServerFlagHasFlags | ServerFlagCanMultiConn,
		ClientFlags: ClientFlagDestroyOnDisconnect,
		Sockets:     []*os.File{a.kernel, b.kernel},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := directRead(t, DevicePath(idx), 0, 4096); !bytes.HasPrefix(got, []byte("two sockets")) {
		t.Errorf("multi-conn read %q", got[:16])
	}
	if err := c.Disconnect(idx); err != nil {
		t.Fatal(err)
	}
}

func testKernelIoctl(t *testing.T, sys Sys) {
	disk := &memDisk{data: make([]byte, 1<<20)}
	disk.writeAt(4096, []byte("ioctl path"))
	p := newServedPair(t, disk)
	// The last device (the guest loads nbd with nbds_max=4): the netlink
	// tests before this one take the first free ones, and one they
	// disconnected with DESTROY_ON_DISCONNECT can still be going away
	// when it already looks free (seen once: the ioctl device then read
	// EOF).
	last := uint32(3)
	sess, err := sys.AttachIoctl(t.Context(), ConnectConfig{Index: &last, Size: 1 << 20, BlockSize: 1024, Sockets: []*os.File{p.kernel}})
	if err != nil {
		t.Fatal(err)
	}
	p.kernel.Close()
	dev := sys.Node(sess.Index)
	if got := directRead(t, dev, 4096, 4096); !bytes.HasPrefix(got, []byte("ioctl path")) {
		t.Errorf("ioctl device read %q", got[:16])
	}
	if err := DisconnectIoctl(dev); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sess.Done():
		t.Logf("NBD_DO_IT returned: %v", sess.Err())
	case <-time.After(30 * time.Second):
		t.Fatal("NBD_DO_IT did not return after DisconnectIoctl")
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Logf("server ended: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("server did not see the disconnect")
	}
}
