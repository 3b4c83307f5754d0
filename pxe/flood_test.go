package pxe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"pack.ag/tftp"

	"github.com/nbdboot/nbdboot/internal/tomlx"
	"github.com/nbdboot/nbdboot/internal/vm"
)

// floodChildEnv tells TestFloodInLab it runs inside the lab's namespace:
// the bridge, the server's address and the attacker's and the victim's
// namespaces.
const floodChildEnv = "NBDBOOT_PXE_FLOOD_CHILD"

// Addresses of the flood test's two machines on the lab's wire.
const (
	attackerIP = "10.0.3.66"
	victimIP   = "10.0.3.77"
)

// TestFloodInLab: one machine of the lab (its own namespace on the
// bridge, as a student's PC) attacks the PXE service in full-DHCP mode
// while another machine, listed in [[pxe.machine]], boots. The attacker
// sends DHCPDISCOVERs and straight DHCPREQUESTs, each from a MAC address
// it invents, until it holds every address of the range it can have;
// holds TFTP transfers it never acknowledges; opens HTTP connections it
// never uses; and asks for the kernel without reading it. The victim
// still gets its OFFER and ACK (from the address kept for it) and iPXE
// over TFTP, each within a second, and the kernel over HTTP with no
// second without data (socket deadlines);
// the attacker holds no more than its share of anything (exact counts),
// its stalled download is cut, and the log stays bounded (the clock is
// frozen, so no limiter refills) with every line of the victim in it.
func TestFloodInLab(t *testing.T) {
	if os.Getenv(floodChildEnv) == "" {
		lab := vm.NewLab(t, 0)
		attacker, victim := lab.Peer(t, attackerIP), lab.Peer(t, victimIP)
		cmd := lab.Command(os.Args[0], "-test.run=^TestFloodInLab$", "-test.v")
		cmd.Env = append(os.Environ(), floodChildEnv+"="+strings.Join([]string{lab.Bridge, lab.Server, attacker.NS, victim.NS}, " "))
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestFloodInLab") {
			t.Errorf("in the lab: %v\n%s", err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "packets flooded") {
				t.Log(strings.TrimSpace(l))
			}
		}
		return
	}
	env := strings.Fields(os.Getenv(floodChildEnv))
	server := env[1]
	attacker, victim := &vm.Lab{NS: env[2]}, &vm.Lab{NS: env[3]}
	dir := t.TempDir()
	cfg := bootFilesIn(t, dir)
	cfg.Interface = env[0]
	cfg.HTTPPort = 8080
	// Long enough that none of the attacker's ten TFTP transfers below
	// ends by its stall (freeing a place) before the tenth is asked for,
	// on a loaded machine too: with 2 s, one run under load saw 6 held.
	cfg.StallTimeout = tomlx.Duration(5 * time.Second)
	// A kernel larger than the socket buffers, so that a client not
	// reading it stalls the server's writes.
	const kernelSize = 8 << 20 // twice the largest TCP send buffer (tcp_wmem)
	cfg.Kernel = filepath.Join(dir, "big-vmlinuz")
	if err := os.WriteFile(cfg.Kernel, make([]byte, kernelSize), 0o644); err != nil {
		t.Fatal(err)
	}
	victimMAC := macKnown
	cfg.Machines = []Machine{{MAC: victimMAC.String()}, {MAC: "52:54:00:9e:00:02"}} // two addresses kept
	const rangeSize = 40                                                            // the attacker gets 38 (of 60 new leases a minute)
	cfg.DHCP = &DHCPConfig{RangeStart: "10.0.3.100", RangeEnd: "10.0.3.139"}
	log := vm.NewLineLog()
	frozen := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)
	s, err := Start(cfg, Options{
		Log: slog.New(slog.NewTextHandler(log, nil)), StateDir: dir, Now: func() time.Time { return frozen },
		ProbeDHCP: func(string) (net.IP, error) { return nil, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dhcpServer := &net.UDPAddr{IP: net.ParseIP(server), Port: portDHCP}

	// The DHCP flood: every packet from a MAC address never seen.
	began := time.Now()
	aconn := udpIn(t, attacker, attackerIP+":68")
	var sent atomic.Int64
	stop := make(chan struct{})
	var flood sync.WaitGroup
	flood.Add(1)
	go func() {
		defer flood.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			mac := net.HardwareAddr{0x02, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
			typ := dhcpv4.MessageTypeDiscover
			mods := []dhcpv4.Modifier{dhcpv4.WithHwAddr(mac)}
			if i%2 == 1 {
				typ = dhcpv4.MessageTypeRequest
				mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip4(u32(net.ParseIP("10.0.3.100"))+uint32(i/2%rangeSize)))))
			}
			m, err := dhcpv4.New(append(mods, dhcpv4.WithMessageType(typ))...)
			if err != nil {
				panic(err)
			}
			if _, err := aconn.WriteTo(m.ToBytes(), dhcpServer); err != nil && !errors.Is(err, syscall.ENOBUFS) {
				return
			}
			sent.Add(1)
		}
	}()
	defer func() {
		close(stop)
		flood.Wait()
		aconn.Close()
	}()
	// The attacker holds every address it can (by offers and leases).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := log.WaitCount(ctx, errReserved.Error(), 1); err != nil {
		t.Fatalf("the flood (%d packets) did not reach the addresses kept: %v\n%s", sent.Load(), err, log.Tail(20))
	}

	// TFTP transfers the attacker never acknowledges: it holds
	// max_transfers_per_address of them, the others are refused at once.
	held, busy := 0, 0
	for range 10 {
		c := udpIn(t, attacker, attackerIP+":0")
		defer c.Close()
		rrq := append([]byte{0, 1}, "02-00-00-00-00-01/undionly.kpxe\x00octet\x00"...)
		if _, err := c.WriteTo(rrq, &net.UDPAddr{IP: net.ParseIP(server), Port: portTFTP}); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 600)
		n, err := c.Read(buf)
		switch {
		case err != nil:
			t.Fatalf("TFTP request %d: no answer: %v", held+busy, err)
		case n >= 4 && buf[1] == 3: // DATA: a transfer, never acknowledged
			held++
		case n >= 4 && buf[1] == 5 && strings.Contains(string(buf[4:n]), "server busy"):
			busy++
		default:
			t.Fatalf("TFTP answer % x", buf[:n])
		}
	}
	if held != DefaultTransfersPerAddress || busy != 10-DefaultTransfersPerAddress {
		t.Errorf("one address holds %d TFTP transfers (%d refused), want %d", held, busy, DefaultTransfersPerAddress)
	}

	// HTTP: a download the attacker does not read is cut after
	// stall_timeout, freeing its place.
	slow := dialIn(t, attacker, server+":8080", 4096)
	fmt.Fprintf(slow, "GET /boot/02-00-00-00-00-01/kernel HTTP/1.1\r\nHost: x\r\n\r\n")
	cut := regexp.MustCompile(`client=` + regexp.QuoteMeta(attackerIP) + `:\d+ step=kernel bytes=(\d+) size=` + strconv.Itoa(kernelSize))
	if err := log.WaitMatch(ctx, cut, 1); err != nil {
		t.Fatalf("a download not read was not cut: %v\n%s", err, log.Tail(20))
	}
	for _, l := range log.Lines() {
		if m := cut.FindStringSubmatch(l); m != nil && m[1] == strconv.Itoa(kernelSize) {
			t.Errorf("the stalled download was sent whole: %s", l)
		}
	}
	slow.Close()
	// Connections that never speak: max_http_per_address are kept (until
	// the header timeout), the others closed at once.
	kept, closed := 0, 0
	var silent []net.Conn
	for range 2 * DefaultHTTPPerAddress {
		c := dialIn(t, attacker, server+":8080", 0)
		defer c.Close()
		silent = append(silent, c)
	}
	until := time.Now().Add(time.Second)
	results := make(chan error, len(silent))
	for _, c := range silent {
		c.SetReadDeadline(until)
		go func() {
			_, err := c.Read(make([]byte, 1))
			results <- err
		}()
	}
	for range silent {
		if err := <-results; errors.Is(err, os.ErrDeadlineExceeded) {
			kept++
		} else {
			closed++
		}
	}
	if kept != DefaultHTTPPerAddress {
		t.Errorf("one address holds %d silent HTTP connections (%d closed), want %d", kept, closed, DefaultHTTPPerAddress)
	}

	// The victim boots, the DHCP flood going on.
	vconn := udpIn(t, victim, victimIP+":68")
	defer vconn.Close()
	offer := exchange(t, vconn, dhcpServer, request(t, victimMAC, dhcpv4.MessageTypeDiscover, 0, ""), dhcpv4.MessageTypeOffer)
	if offer.BootFileName != "52-54-00-9e-00-01/undionly.kpxe" {
		t.Errorf("the victim's offer names %q", offer.BootFileName)
	}
	req := request(t, victimMAC, dhcpv4.MessageTypeRequest, 0, "")
	req.UpdateOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr))
	req.UpdateOption(dhcpv4.OptServerIdentifier(net.ParseIP(server)))
	exchange(t, vconn, dhcpServer, req, dhcpv4.MessageTypeAck)

	var ipxe []byte
	if err := victim.Do(func() error {
		c, err := tftp.NewClient(tftp.ClientTimeout(1), tftp.ClientRetransmit(1))
		if err != nil {
			return err
		}
		r, err := c.Get("tftp://" + server + ":69/52-54-00-9e-00-01/undionly.kpxe")
		if err != nil {
			return err
		}
		ipxe, err = io.ReadAll(r)
		return err
	}); err != nil || string(ipxe) != "undionly.kpxe" {
		t.Errorf("the victim's TFTP: %q, %v", ipxe, err)
	}
	kc := dialIn(t, victim, server+":8080", 0)
	defer kc.Close()
	fmt.Fprintf(kc, "GET /boot/52-54-00-9e-00-01/kernel HTTP/1.1\r\nHost: x\r\n\r\n")
	// The answer starts within a second and never stops for one (the
	// whole 8 MiB under -race on a loaded machine may take longer).
	resp, err := http.ReadResponse(bufio.NewReader(progressReader{kc}), nil)
	if err != nil {
		t.Fatalf("the victim's kernel: %v", err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 || n != kernelSize || err != nil {
		t.Errorf("the victim's kernel: status %d, %d bytes, %v", resp.StatusCode, n, err)
	}

	// The victim has its lease, the attacker every other address but
	// the one kept for the machine not booted yet.
	s.leases.mu.Lock()
	free := 0
	for v := s.leases.pool.first; v <= s.leases.pool.last; v++ {
		if s.leases.freeLocked(ip4(v).String(), "", frozen) {
			free++
		}
	}
	victimLease := s.leases.byMAC[victimMAC.String()]
	s.leases.mu.Unlock()
	if free != 1 || victimLease == nil || victimLease.IP != offer.YourIPAddr.String() {
		t.Errorf("after the flood: %d addresses free (want the 1 kept), the victim's lease %+v", free, victimLease)
	}
	if sent.Load() < 1000 {
		t.Errorf("only %d packets in the flood", sent.Load())
	}
	lines := log.Lines()
	// Nothing refills with the clock frozen: the MACs neither listed nor
	// leased log one burst (100) together, the attacker's address one
	// (TFTP, HTTP), a MAC that took a lease a line or two on its own;
	// the victim a few. Far below the limiter's total burst (1000).
	if len(lines) > 100+100+2*rangeSize+20 {
		t.Errorf("%d lines logged for %d packets: the log is not bounded", len(lines), sent.Load())
	}
	for _, step := range []string{"step=dhcp-lease", "step=tftp file=undionly.kpxe", "step=kernel bytes=" + strconv.Itoa(kernelSize)} {
		if log.Count("mac="+victimMAC.String()) == 0 || !containsBoth(lines, "mac="+victimMAC.String(), step) {
			t.Errorf("the victim's %q is not logged:\n%s", step, log.Tail(20))
		}
	}
	t.Logf("%d packets flooded, %d log lines, %s", sent.Load(), len(lines), time.Since(began))
}

// progressReader gives every read of its connection a second.
type progressReader struct{ c net.Conn }

func (r progressReader) Read(p []byte) (int, error) {
	r.c.SetReadDeadline(time.Now().Add(time.Second))
	return r.c.Read(p)
}

// containsBoth reports whether a line holds both a and b.
func containsBoth(lines []string, a, b string) bool {
	for _, l := range lines {
		if strings.Contains(l, a) && strings.Contains(l, b) {
			return true
		}
	}
	return false
}

// udpIn opens a UDP socket in lab's namespace, bound to addr.
func udpIn(t *testing.T, lab *vm.Lab, addr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	if err := lab.Do(func() error {
		a, err := net.ResolveUDPAddr("udp4", addr)
		if err == nil {
			c, err = net.ListenUDP("udp4", a)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return c
}

// dialIn connects to addr from lab's namespace, with a receive buffer of
// rcvbuf bytes when not 0.
func dialIn(t *testing.T, lab *vm.Lab, addr string, rcvbuf int) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: time.Second}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			return errors.Join(err, serr)
		}
	}
	var c net.Conn
	if err := lab.Do(func() (err error) {
		c, err = d.Dial("tcp4", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return c
}

// exchange sends m to the server until a reply of type want to it comes,
// within a second in all.
func exchange(t *testing.T, c *net.UDPConn, to net.Addr, m *dhcpv4.DHCPv4, want dhcpv4.MessageType) *dhcpv4.DHCPv4 {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	buf := make([]byte, 1500)
	for time.Now().Before(deadline) {
		if _, err := c.WriteTo(m.ToBytes(), to); err != nil {
			t.Fatal(err)
		}
		// A lost packet is sent again, as a DHCP client does.
		next := time.Now().Add(200 * time.Millisecond)
		if next.After(deadline) {
			next = deadline
		}
		c.SetReadDeadline(next)
		for {
			n, err := c.Read(buf)
			if err != nil {
				break
			}
			r, err := dhcpv4.FromBytes(buf[:n])
			if err == nil && r.TransactionID == m.TransactionID && r.MessageType() == want {
				return r
			}
		}
	}
	t.Fatalf("no %s to the %s within a second", want, m.MessageType())
	return nil
}
