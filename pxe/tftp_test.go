package pxe

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/tomlx"
	"github.com/nbdboot/nbdboot/internal/vm"
)

// TestTFTPTransfer runs the TFTP server on loopback and plays its
// clients packet by packet: a file of two full blocks ends with an empty
// one; a probe for the size (OACK, then the client's ERROR, as EDK2 does)
// ends the transfer quietly; a block size past an Ethernet frame is cut
// to one; a packet from another port gets "unknown transfer ID"; a
// client that stops acknowledging is dropped after stall_timeout, and
// its place is given back.
func TestTFTPTransfer(t *testing.T) {
	cfg := bootFilesIn(t, t.TempDir())
	if err := os.WriteFile(cfg.IPXEBIOS, bytes.Repeat([]byte{'x'}, 1024), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.StallTimeout = tomlx.Duration(300 * time.Millisecond)
	cfg.MaxTransfersPerAddress = 1
	cfg = cfg.WithDefaults()
	m, err := newMachines(cfg.Default, nil)
	if err != nil {
		t.Fatal(err)
	}
	log := vm.NewLineLog()
	lo := net.IPv4(127, 0, 0, 1).To4()
	s := newService(cfg, slog.New(slog.NewTextHandler(log, nil)), m, bootFiles{ip: lo, bios: "undionly.kpxe", efi: "snponly.efi"}, time.Now)
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: lo})
	if err != nil {
		t.Fatal(err)
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.serveTFTP(srv) }()
	defer func() { close(s.done); srv.Close(); s.wg.Wait() }()

	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: lo})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 2000)
	// recv is the next packet and where it came from (the transfer's
	// port), within a second.
	recv := func() ([]byte, *net.UDPAddr) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("no packet: %v\n%s", err, log.Tail(10))
		}
		return buf[:n], from
	}
	send := func(p []byte, to *net.UDPAddr) {
		t.Helper()
		if _, err := c.WriteToUDP(p, to); err != nil {
			t.Fatal(err)
		}
	}
	ack := func(n uint16) []byte { return []byte{0, opACK, byte(n >> 8), byte(n)} }
	want := func(got, want []byte) {
		t.Helper()
		if !bytes.Equal(got, want) {
			t.Fatalf("got % x, want % x", got[:min(len(got), 16)], want[:min(len(want), 16)])
		}
	}
	server := srv.LocalAddr().(*net.UDPAddr)
	name := "52-54-00-9e-00-01/undionly.kpxe"

	send(rrq{name: name, mode: "octet"}.bytes(), server)
	p, tid := recv()
	want(p, dataPacket(nil, 1, bytes.Repeat([]byte{'x'}, 512)))
	other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: lo})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.WriteToUDP(ack(1), tid)
	other.SetReadDeadline(time.Now().Add(time.Second))
	n, _, err := other.ReadFromUDP(buf)
	if err != nil {
		t.Fatal(err)
	}
	want(buf[:n], errorPacket(tftpErrUnknownID, "unknown transfer ID"))
	send(ack(1), tid)
	p, _ = recv()
	want(p, dataPacket(nil, 2, bytes.Repeat([]byte{'x'}, 512)))
	send(ack(2), tid)
	p, _ = recv()
	want(p, dataPacket(nil, 3, nil))
	send(ack(3), tid)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := log.WaitCount(ctx, "step=tftp file=undionly.kpxe bytes=1024", 1); err != nil {
		t.Fatal(err)
	}

	send(rrq{name: name, mode: "octet", blksize: 9000, tsize: true}.bytes(), server)
	p, tid = recv()
	want(p, oackPacket(tftpMaxBlock, 1024))
	send(errorPacket(8, "size probe done"), tid)
	if err := log.WaitCount(ctx, "step=tftp file=undionly.kpxe bytes=0", 1); err != nil {
		t.Fatal(err)
	}

	// Never acknowledged: dropped after stall_timeout. Meanwhile the
	// address's one place is taken.
	send(rrq{name: name, mode: "octet"}.bytes(), server)
	p, tid = recv()
	want(p, dataPacket(nil, 1, bytes.Repeat([]byte{'x'}, 512)))
	send(rrq{name: name, mode: "octet"}.bytes(), server)
	p, _ = recv()
	want(p, errorPacket(tftpErrUndefined, "server busy"))
	p, from := recv()
	if !from.IP.Equal(tid.IP) || from.Port != tid.Port {
		t.Fatalf("packet from %s, want the transfer's %s", from, tid)
	}
	want(p, errorPacket(tftpErrUndefined, "timeout"))
	if err := log.WaitCount(ctx, "not acknowledged within stall_timeout", 1); err != nil {
		t.Fatal(err)
	}
	send(rrq{name: name, mode: "octet"}.bytes(), server)
	p, _ = recv()
	want(p, dataPacket(nil, 1, bytes.Repeat([]byte{'x'}, 512)))
	if strings.Contains(strings.Join(log.Lines(), "\n"), "level=ERROR") {
		t.Errorf("errors logged:\n%s", log.Tail(10))
	}
}
