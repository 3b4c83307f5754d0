package pxe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"golang.org/x/net/netutil"

	"github.com/nbdboot/nbdboot/internal/ratelog"
	"github.com/nbdboot/nbdboot/protocol"
)

// Ports the service listens on.
const (
	portDHCP = 67
	portBINL = 4011 // PXE boot server: UEFI's second request, iPXE's ProxyDHCPREQUEST
	portTFTP = 69
)

// maxHTTPConns caps the HTTP connections served at once (each may hold
// an open kernel or initramfs); more wait in the kernel's backlog. One
// source address holds at most Config.MaxHTTPPerAddress of them.
const maxHTTPConns = 256

// maxDHCPInFlight caps DHCP requests handled at once (the DHCP library
// starts a goroutine per packet); more are dropped. One MAC address has
// one handled at a time, and the last dhcpKnownReserve are for machines
// listed or holding a lease, so a flood of invented MAC addresses does
// not crowd them out.
const (
	maxDHCPInFlight  = 64
	dhcpKnownReserve = 16
)

// Options are what the service takes from the rest of nbdserve.
type Options struct {
	Log      *slog.Logger
	NBDPort  int    // the NBD listener's port, for ${server}
	StateDir string // full-DHCP mode keeps its leases here
	// ProbeDHCP reports another DHCP server answering on the interface
	// (its address), before full-DHCP mode starts; nil: a real
	// DHCPDISCOVER with a 3 s wait.
	ProbeDHCP func(iface string) (net.IP, error)
	Now       func() time.Time // nil: time.Now
}

// Service is the running PXE service.
type Service struct {
	cfg       Config
	log       *slog.Logger
	files     bootFiles
	mask      net.IPMask
	nbdServer string
	machines  *machines
	leases    *leases // nil in proxyDHCP mode
	clients   clients // IP → MAC of the machines booted
	transfers *slots  // TFTP transfers, by source address
	httpConns *slots  // HTTP connections, by source address
	dhcpSlots *slots  // DHCP handlers, by MAC address
	logs      *ratelog.Limiter

	dhcp, binl *server4.Server
	http       *http.Server
	wg         sync.WaitGroup
	tftpConn   *net.UDPConn
	done       chan struct{} // closed by Close: transfers end
	closeOnce  sync.Once
	closeErr   error
}

// Start checks the configuration, the files and the interface, opens
// every port, and serves until Close. Every problem is named: a missing
// file, an interface without an IPv4 address, a port already taken,
// another DHCP server on the interface in full-DHCP mode.
func Start(cfg Config, o Options) (*Service, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NBDPort == 0 {
		o.NBDPort = protocol.DefaultPort
	}
	var errs []error
	for _, f := range []struct{ what, path string }{
		{"kernel", cfg.Kernel}, {"initramfs", cfg.Initramfs},
		{"ipxe_bios", cfg.IPXEBIOS}, {"ipxe_efi", cfg.IPXEEFI},
	} {
		if err := checkFile(f.path); err != nil {
			errs = append(errs, fmt.Errorf("pxe: %s: %w", f.what, err))
		}
	}
	ip, mask, err := interfaceAddr(cfg.Interface)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	m, err := newMachines(cfg.Default, cfg.Machines)
	if err != nil {
		return nil, err
	}
	s := newService(cfg, o.Log, m, bootFiles{ip: ip, httpPort: cfg.HTTPPort, bios: filepath.Base(cfg.IPXEBIOS), efi: filepath.Base(cfg.IPXEEFI)}, o.Now)
	s.mask = mask
	if o.NBDPort != protocol.DefaultPort { // the default port is left out of ${server}
		s.nbdServer = net.JoinHostPort(ip.String(), strconv.Itoa(o.NBDPort))
	}
	if cfg.DHCP != nil {
		if err := s.startFullDHCP(o, ip, mask); err != nil {
			return nil, err
		}
	}
	if err := s.listen(ip); err != nil {
		return nil, err
	}
	mode := "proxyDHCP"
	if s.leases != nil {
		mode = "full DHCP " + cfg.DHCP.RangeStart + "-" + cfg.DHCP.RangeEnd
	}
	s.log.Info("pxe serving", "interface", cfg.Interface, "addr", ip.String(), "mode", mode,
		"http", s.files.baseURL(nil), "kernel", cfg.Kernel, "initramfs", cfg.Initramfs)
	return s, nil
}

// newService is a service not yet listening: its tables, per-client
// bounds and rate-limited logs.
func newService(cfg Config, log *slog.Logger, m *machines, files bootFiles, now func() time.Time) *Service {
	return &Service{
		cfg: cfg, log: log, machines: m, files: files, nbdServer: files.ip.String(),
		transfers: newSlots(cfg.MaxTransfersPerAddress, maxTransfers, 0),
		httpConns: newSlots(cfg.MaxHTTPPerAddress, maxHTTPConns, 0),
		dhcpSlots: newSlots(1, maxDHCPInFlight, dhcpKnownReserve),
		logs:      ratelog.New(now),
		done:      make(chan struct{}),
	}
}

// startFullDHCP refuses to start when another server answers, then opens
// the lease table.
func (s *Service) startFullDHCP(o Options, ip net.IP, mask net.IPMask) error {
	p, err := s.cfg.DHCP.pool()
	if err != nil {
		return err
	}
	subnet := net.IPNet{IP: ip.Mask(mask), Mask: mask}
	if !subnet.Contains(ip4(p.first)) || !subnet.Contains(ip4(p.last)) || p.contains(ip) {
		return fmt.Errorf("pxe: dhcp range %s-%s is not inside %s (interface %s) or holds this host's address", ip4(p.first), ip4(p.last), subnet.String(), s.cfg.Interface)
	}
	probe := o.ProbeDHCP
	if probe == nil {
		probe = probeDHCP
	}
	other, err := probe(s.cfg.Interface)
	if err != nil {
		return fmt.Errorf("pxe: look for another DHCP server on %s: %w", s.cfg.Interface, err)
	}
	if other != nil {
		return fmt.Errorf("pxe: another DHCP server (%s) answers on %s: not starting full-DHCP mode (use proxyDHCP: remove [pxe.dhcp])", other, s.cfg.Interface)
	}
	s.leases, err = openLeases(filepath.Join(o.StateDir, "pxe-leases.json"), p, time.Duration(s.cfg.DHCP.Lease), o.Now)
	if err != nil {
		return err
	}
	s.leases.policy = s.leasePolicy(o.Now)
	return nil
}

// leasePolicy is full-DHCP mode's admission of new clients from the
// config: the listed machines, known_only, new_leases_per_minute.
func (s *Service) leasePolicy(now func() time.Time) leasePolicy {
	listed := make(map[string]bool, len(s.machines.byMAC))
	for mac := range s.machines.byMAC {
		listed[mac] = true
	}
	return leasePolicy{listed: listed, knownOnly: s.cfg.DHCP.KnownOnly, gate: ratelog.NewGate(s.cfg.DHCP.NewLeasesPerMinute, now)}
}

// probeDHCP broadcasts a DHCPDISCOVER on iface and reports the server
// that offers an address, if one does within 3 s.
func probeDHCP(iface string) (net.IP, error) {
	c, err := newProbeClient(iface)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	offer, err := c.DiscoverOffer(ctx)
	if err != nil {
		return nil, nil // nobody answered
	}
	if sid := offer.ServerIdentifier(); sid != nil {
		return sid, nil
	}
	return offer.ServerIPAddr, nil
}

// listen opens the DHCP, TFTP and HTTP ports, all or none, and starts
// serving them.
func (s *Service) listen(ip net.IP) (err error) {
	iface := s.cfg.Interface
	var opened []io.Closer
	defer func() {
		if err != nil {
			for _, c := range opened {
				c.Close()
			}
		}
	}()
	c67, err := server4.NewIPv4UDPConn(iface, &net.UDPAddr{Port: portDHCP})
	if err != nil {
		return fmt.Errorf("pxe: DHCP port %d on %s: %w", portDHCP, iface, err)
	}
	opened = append(opened, c67)
	c4011, err := server4.NewIPv4UDPConn(iface, &net.UDPAddr{Port: portBINL})
	if err != nil {
		return fmt.Errorf("pxe: PXE port %d on %s: %w", portBINL, iface, err)
	}
	opened = append(opened, c4011)
	tconn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: ip, Port: portTFTP})
	if err != nil {
		return fmt.Errorf("pxe: TFTP port %d on %s: %w", portTFTP, ip, err)
	}
	opened = append(opened, tconn)
	hln, err := net.Listen("tcp4", net.JoinHostPort(ip.String(), strconv.Itoa(s.cfg.HTTPPort)))
	if err != nil {
		return fmt.Errorf("pxe: HTTP port %d on %s: %w", s.cfg.HTTPPort, ip, err)
	}
	opened = append(opened, hln)
	s.dhcp, _ = server4.NewServer(iface, nil, s.handler(false), server4.WithConn(c67))
	s.binl, _ = server4.NewServer(iface, nil, s.handler(true), server4.WithConn(c4011))
	s.http = &http.Server{Handler: s.httpHandler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(s.logs.Logger(s.log, "http-server").Handler(), slog.LevelInfo)}
	s.tftpConn = tconn
	s.wg.Add(4)
	go func() { defer s.wg.Done(); s.dhcp.Serve() }()
	go func() { defer s.wg.Done(); s.binl.Serve() }()
	go func() { defer s.wg.Done(); s.serveTFTP(tconn) }()
	go func() { defer s.wg.Done(); s.http.Serve(netutil.LimitListener(s.perAddress(hln), maxHTTPConns)) }()
	return nil
}

// handler answers the DHCP messages of one port, a bounded number at
// once, one per MAC address.
func (s *Service) handler(port4011 bool) server4.Handler {
	return func(conn net.PacketConn, peer net.Addr, m *dhcpv4.DHCPv4) {
		if len(m.ClientHWAddr) != 6 {
			return
		}
		mac := m.ClientHWAddr.String()
		if !s.dhcpSlots.take(mac, s.known(m.ClientHWAddr)) {
			return
		}
		defer s.dhcpSlots.release(mac)
		reply := s.answer(m, port4011)
		if reply == nil {
			return
		}
		if _, err := conn.WriteTo(reply.ToBytes(), peer); err != nil {
			s.dhcpLog(m.ClientHWAddr).Warn("pxe", "step", "dhcp-send", "err", err)
		}
	}
}

// known reports whether mac is a machine the service knows: listed in
// [[pxe.machine]], or holding a lease in full-DHCP mode.
func (s *Service) known(mac net.HardwareAddr) bool {
	if _, listed := s.machines.byMAC[mac.String()]; listed {
		return true
	}
	return s.leases != nil && s.leases.holds(mac.String())
}

// dhcpLog is the logger of mac's DHCP lines: a known machine's are
// rate-limited on their own, every other MAC's together (a client
// inventing MAC addresses floods one bucket, not the log).
func (s *Service) dhcpLog(mac net.HardwareAddr) *slog.Logger {
	key := "dhcp-new"
	if s.known(mac) {
		key = "mac " + mac.String()
	}
	return s.logs.Logger(s.log, key).With("mac", mac.String())
}

// Close stops every listener, lets HTTP transfers in flight finish (up
// to 5 s), ends TFTP transfers (within tftpResend) and waits for the
// servers to return. It returns the HTTP
// server's shutdown error, if any. Closing twice is fine.
func (s *Service) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Service) close() error {
	close(s.done)
	if s.dhcp != nil {
		s.dhcp.Close()
		s.binl.Close()
	}
	if s.tftpConn != nil {
		s.tftpConn.Close()
	}
	var err error
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = s.http.Shutdown(ctx)
		cancel()
	}
	s.wg.Wait()
	return err
}

// checkFile reports a path that is not a readable regular file.
func checkFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	return nil
}

// interfaceAddr is iface's first IPv4 address and its mask.
func interfaceAddr(iface string) (net.IP, net.IPMask, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, nil, fmt.Errorf("pxe: interface %s: %w", iface, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, nil, fmt.Errorf("pxe: addresses of %s: %w", iface, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.To4(), n.Mask, nil
		}
	}
	return nil, nil, fmt.Errorf("pxe: interface %s has no IPv4 address", iface)
}
