package netcfg

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Config is what Configure sets up.
type Config struct {
	// IP holds the parsed ip= values; empty means ip=dhcp (DHCP on the
	// first link with carrier).
	IP []IPConfig
	// DHCP is the client identity and retry timing for dynamic entries.
	// An entry's hostname and client address are sent as options 12 and
	// 50 unless DHCP already sets them.
	DHCP DHCPConfig
	// CarrierTimeout bounds the wait for carrier per entry (default 30s).
	CarrierTimeout time.Duration
}

// LinkResult is how one ip= entry was configured.
type LinkResult struct {
	Name string
	// Index is the link's interface index: unlike the name, it stays
	// when udev renames the link (eth0 -> ens2) under a running system,
	// so whatever outlives the boot (lease renewal) goes by it.
	Index    int
	MAC      net.HardwareAddr
	Method   Method
	Addr     netip.Prefix
	Gateway  netip.Addr // invalid if no default route was installed via this link
	DNS      []netip.Addr
	NTP      []netip.Addr
	Domain   string
	Hostname string
	RootPath string // DHCP option 17
	MTU      int    // set from DHCP option 26; 0 if untouched
	Lease    *Lease // nil for static entries; pass to RenewLoop
}

// Timing is how long one phase of Configure took.
type Timing struct {
	Phase    string // "carrier eth0", "dhcp eth0", "apply eth0", "resolv.conf", "hostname"
	Duration time.Duration
}

// Result is what Configure did. The top-level fields describe the first
// configured link, except DNS (all links' servers, in order) and Hostname
// and RootPath (the first given).
type Result struct {
	Interface string
	Index     int // Interface's index (see LinkResult.Index)
	MAC       net.HardwareAddr
	Addrs     []netip.Prefix
	Gateway   netip.Addr
	DNS       []netip.Addr
	Domain    string
	Hostname  string
	RootPath  string
	Links     []LinkResult
	Timings   []Timing
}

type options struct {
	handle      *netlink.Handle
	logf        func(string, ...any)
	resolvConf  string
	setHostname func(string) error
}

// Option changes how Configure works.
type Option func(*options)

// WithHandle makes Configure use h for every netlink call (the default is
// a NETLINK_ROUTE-only handle of its own). Link updates are still watched in
// the calling thread's network namespace, so h must be in that namespace.
func WithHandle(h *netlink.Handle) Option { return func(o *options) { o.handle = h } }

// WithLogf sends Configure's log lines to f.
func WithLogf(f func(format string, args ...any)) Option { return func(o *options) { o.logf = f } }

// WithResolvConf sets the resolv.conf path (default /etc/resolv.conf); ""
// leaves resolv.conf alone.
func WithResolvConf(path string) Option { return func(o *options) { o.resolvConf = path } }

// WithHostnameFunc sets how the hostname is set (default sethostname(2));
// nil leaves the hostname alone.
func WithHostnameFunc(f func(name string) error) Option {
	return func(o *options) { o.setHostname = f }
}

// Configure brings the network up as cfg says: for every entry it picks the
// link (named, or the first with carrier), waits for carrier, runs DHCP or
// takes the static addresses, and applies them with Apply. Only the first
// gateway of each family becomes a default route. It then writes
// resolv.conf and sets the hostname. Errors name the ip= value or the link.
func Configure(ctx context.Context, cfg Config, opts ...Option) (Result, error) {
	o := options{
		logf:        func(string, ...any) {},
		resolvConf:  "/etc/resolv.conf",
		setHostname: func(name string) error { return unix.Sethostname([]byte(name)) },
	}
	for _, opt := range opts {
		opt(&o)
	}
	entries := cfg.IP
	if len(entries) == 0 {
		entries = []IPConfig{{Autoconf: AutoconfDHCP}}
	}
	taken := map[string]bool{}
	for _, e := range entries {
		if e.Method() == MethodRARP {
			return Result{}, fmt.Errorf("ip=%s: autoconf rarp is not supported; expected dhcp, on, any, bootp, both, off or none", e)
		}
		if e.Device != "" {
			taken[e.Device] = true
		}
	}
	h := o.handle
	if h == nil {
		var err error
		// Only rtnetlink: asking for every family fails where xfrm_user
		// is a module that is not loaded (EPROTONOSUPPORT).
		if h, err = netlink.NewHandle(unix.NETLINK_ROUTE); err != nil {
			return Result{}, fmt.Errorf("open netlink: %w", err)
		}
		defer h.Close()
	}
	c := configurer{cfg: cfg, o: o, h: h, taken: taken, haveRoute: map[bool]bool{}}
	for _, e := range entries {
		if e.Method() == MethodOff {
			o.logf("netcfg: ip=%s: network not configured", e)
			continue
		}
		lr, err := c.entry(ctx, e)
		if err != nil {
			return Result{}, err
		}
		c.res.Links = append(c.res.Links, lr)
	}
	if err := c.finish(); err != nil {
		return Result{}, err
	}
	return c.res, nil
}

type configurer struct {
	cfg       Config
	o         options
	h         *netlink.Handle
	taken     map[string]bool
	haveRoute map[bool]bool // default route installed, by Is4
	res       Result
}

func (c *configurer) phase(name string, start time.Time) {
	c.res.Timings = append(c.res.Timings, Timing{Phase: name, Duration: time.Since(start)})
}

// entry configures one ip= entry.
func (c *configurer) entry(ctx context.Context, e IPConfig) (LinkResult, error) {
	start := time.Now()
	link, err := c.carrier(ctx, e)
	if err != nil {
		return LinkResult{}, err
	}
	name := link.Attrs().Name
	c.phase("carrier "+name, start)
	c.taken[name] = true
	lr := LinkResult{Name: name, Index: link.Attrs().Index, MAC: link.Attrs().HardwareAddr, Method: e.Method(), Hostname: e.Hostname, DNS: e.DNS()}
	if e.NTP0.IsValid() {
		lr.NTP = []netip.Addr{e.NTP0}
	}
	lc := LinkConfig{Link: name}
	switch lr.Method {
	case MethodStatic:
		lc.Addr, lc.Gateway = e.Prefix(), e.Gateway
	case MethodDHCP:
		start = time.Now()
		dc := c.cfg.DHCP
		if dc.Hostname == "" {
			dc.Hostname = e.Hostname
		}
		if !dc.RequestedIP.IsValid() {
			dc.RequestedIP = e.Client
		}
		if dc.Logf == nil {
			dc.Logf = c.o.logf
		}
		l, err := DHCP(ctx, name, dc)
		if err != nil {
			return LinkResult{}, err
		}
		c.phase("dhcp "+name, start)
		c.o.logf("netcfg: dhcp on %s: %s", name, l)
		lc.Addr, lc.Gateway, lc.MTU = l.Addr, l.Router, l.MTU
		lr.Lease, lr.MTU, lr.Domain, lr.RootPath = l, l.MTU, l.Domain, l.RootPath
		if len(lr.DNS) == 0 {
			lr.DNS = l.DNS
		}
		if lr.Hostname == "" {
			lr.Hostname = l.Hostname
		}
		if len(lr.NTP) == 0 {
			lr.NTP = l.NTP
		}
	}
	if lc.Gateway.IsValid() && c.haveRoute[lc.Gateway.Is4()] {
		c.o.logf("netcfg: %s: default route exists already, ignoring gateway %s", name, lc.Gateway)
		lc.Gateway = netip.Addr{}
	}
	start = time.Now()
	if err := Apply(c.h, lc); err != nil {
		return LinkResult{}, err
	}
	c.phase("apply "+name, start)
	if lc.Gateway.IsValid() {
		c.haveRoute[lc.Gateway.Is4()] = true
	}
	lr.Addr, lr.Gateway = lc.Addr, lc.Gateway
	c.o.logf("netcfg: %s (%s) %s %s gateway %s", name, lr.MAC, lr.Method, lr.Addr, lr.Gateway)
	return lr, nil
}

// carrier picks the entry's link, brings it up and waits for carrier. Of
// several candidates the first with carrier wins; the others that were down
// are set down again, as the kernel does.
func (c *configurer) carrier(ctx context.Context, e IPConfig) (netlink.Link, error) {
	links, err := pickLinks(c.h, e.Device, c.taken)
	if err != nil {
		return nil, err
	}
	timeout := c.cfg.CarrierTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	link, err := upLinks(cctx, c.h, links)
	if err != nil {
		return nil, fmt.Errorf("ip=%s: %w", e, err)
	}
	for _, l := range links {
		if l.Attrs().Index != link.Attrs().Index && l.Attrs().Flags&net.FlagUp == 0 {
			if err := c.h.LinkSetDown(l); err != nil {
				return nil, fmt.Errorf("set unused link %s down: %w", l.Attrs().Name, err)
			}
		}
	}
	return link, nil
}

// finish fills the summary fields, writes resolv.conf and sets the hostname.
func (c *configurer) finish() error {
	r := &c.res
	for i, l := range r.Links {
		if i == 0 {
			r.Interface, r.Index, r.MAC, r.Domain = l.Name, l.Index, l.MAC, l.Domain
			r.Addrs = []netip.Prefix{l.Addr}
		}
		if !r.Gateway.IsValid() {
			r.Gateway = l.Gateway
		}
		for _, a := range l.DNS {
			if !slices.Contains(r.DNS, a) {
				r.DNS = append(r.DNS, a)
			}
		}
		if r.Hostname == "" {
			r.Hostname = l.Hostname
		}
		if r.RootPath == "" {
			r.RootPath = l.RootPath
		}
	}
	if c.o.resolvConf != "" && (len(r.DNS) > 0 || r.Domain != "") {
		start := time.Now()
		if err := writeFileAtomic(c.o.resolvConf, ResolvConf(r.DNS, r.Domain)); err != nil {
			return err
		}
		c.phase("resolv.conf", start)
	}
	if c.o.setHostname != nil && r.Hostname != "" {
		start := time.Now()
		if err := c.o.setHostname(r.Hostname); err != nil {
			return fmt.Errorf("set hostname %s: %w", r.Hostname, err)
		}
		c.phase("hostname", start)
	}
	return nil
}
