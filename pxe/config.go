package pxe

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/nbdboot/nbdboot/internal/tomlx"
)

// Defaults of Config's fields.
const (
	DefaultHTTPPort = 80
	DefaultCmdline  = "ip=dhcp nbdroot=nbd://${server}/${export}"
	DefaultIPXEBIOS = "/usr/lib/ipxe/undionly.kpxe"
	DefaultIPXEEFI  = "/usr/lib/ipxe/snponly.efi"
	DefaultLease    = time.Hour
	// DefaultTransfersPerAddress caps the TFTP transfers of one source
	// address (of maxTransfers in all).
	DefaultTransfersPerAddress = 4
	// DefaultHTTPPerAddress caps the HTTP connections of one source
	// address (of maxHTTPConns in all).
	DefaultHTTPPerAddress = 8
	// DefaultStallTimeout cuts a TFTP transfer or an HTTP response that
	// makes no progress for this long.
	DefaultStallTimeout = 30 * time.Second
	// DefaultNewLeasesPerMinute is the rate at which full-DHCP mode hands
	// addresses to MAC addresses not listed in [[pxe.machine]] and
	// holding none (in bursts of as many).
	DefaultNewLeasesPerMinute = 60
)

// Config is nbdserve's [pxe] section. The service runs when Interface is
// set.
type Config struct {
	// Interface is the network interface to serve on (its first IPv4
	// address is the server's address machines are told).
	Interface string `toml:"interface"`
	// HTTPPort serves the iPXE script, kernel and initramfs.
	HTTPPort int `toml:"http_port"`
	// Kernel and Initramfs are the files machines boot (a bzImage and
	// nbdboot's initramfs).
	Kernel    string `toml:"kernel"`
	Initramfs string `toml:"initramfs"`
	// Cmdline is the kernel command line template: ${server} becomes
	// this host's address (and NBD port unless 10809), ${export} the
	// machine's export, ${mac} its MAC address.
	Cmdline string `toml:"cmdline"`
	// IPXEBIOS and IPXEEFI are the iPXE binaries sent over TFTP to BIOS
	// and to x86-64 UEFI PXE ROMs.
	IPXEBIOS string `toml:"ipxe_bios"`
	IPXEEFI  string `toml:"ipxe_efi"`
	// Default is the choice for machines not in Machines.
	Default Machine `toml:"default"`
	// Machines are per-MAC choices.
	Machines []Machine `toml:"machine"`
	// DHCP, when set, makes the service the interface's DHCP server.
	DHCP *DHCPConfig `toml:"dhcp"`
	// MaxTransfersPerAddress caps the TFTP transfers and
	// MaxHTTPPerAddress the HTTP connections of one source address, so
	// that one machine cannot take the service's slots from the others.
	MaxTransfersPerAddress int `toml:"max_transfers_per_address"`
	MaxHTTPPerAddress      int `toml:"max_http_per_address"`
	// StallTimeout cuts a TFTP transfer or HTTP response whose client
	// takes no data for this long.
	StallTimeout tomlx.Duration `toml:"stall_timeout"`
}

// Machine is what one machine (or, as Config.Default, every other) boots.
type Machine struct {
	MAC    string `toml:"mac"`    // aa:bb:cc:dd:ee:ff (not in Default)
	Export string `toml:"export"` // ${export}; Default's when empty
	Append string `toml:"append"` // words added to the command line
	Refuse bool   `toml:"refuse"` // never boot this machine
}

// DHCPConfig is the full-DHCP mode for an isolated classroom switch.
type DHCPConfig struct {
	// RangeStart and RangeEnd bound the addresses handed out, inside the
	// interface's subnet.
	RangeStart string `toml:"range_start"`
	RangeEnd   string `toml:"range_end"`
	// Lease is the lease time (default 1h).
	Lease tomlx.Duration `toml:"lease"`
	// Router is handed out as the default gateway when set.
	Router string `toml:"router"`
	// NewLeasesPerMinute bounds the addresses handed out a minute to
	// MAC addresses not in [[pxe.machine]] (default 60, in bursts of as
	// many): a machine inventing MAC addresses takes the range slowly,
	// and never the addresses kept for the listed machines.
	NewLeasesPerMinute int `toml:"new_leases_per_minute"`
	// KnownOnly hands addresses only to the machines in [[pxe.machine]].
	KnownOnly bool `toml:"known_only"`
}

// Enabled reports whether the [pxe] section turns the service on.
func (c Config) Enabled() bool { return c.Interface != "" }

// WithDefaults fills in the defaults of unset fields.
func (c Config) WithDefaults() Config {
	if c.HTTPPort == 0 {
		c.HTTPPort = DefaultHTTPPort
	}
	if c.Cmdline == "" {
		c.Cmdline = DefaultCmdline
	}
	if c.IPXEBIOS == "" {
		c.IPXEBIOS = DefaultIPXEBIOS
	}
	if c.IPXEEFI == "" {
		c.IPXEEFI = DefaultIPXEEFI
	}
	if c.MaxTransfersPerAddress == 0 {
		c.MaxTransfersPerAddress = DefaultTransfersPerAddress
	}
	if c.MaxHTTPPerAddress == 0 {
		c.MaxHTTPPerAddress = DefaultHTTPPerAddress
	}
	if c.StallTimeout == 0 {
		c.StallTimeout = tomlx.Duration(DefaultStallTimeout)
	}
	if c.DHCP != nil {
		d := *c.DHCP // not the caller's
		if d.Lease == 0 {
			d.Lease = tomlx.Duration(DefaultLease)
		}
		if d.NewLeasesPerMinute == 0 {
			d.NewLeasesPerMinute = DefaultNewLeasesPerMinute
		}
		c.DHCP = &d
	}
	return c
}

// Validate checks what can be checked without the files and the network
// (Start checks those).
func (c Config) Validate() error {
	var errs []error
	if c.Kernel == "" {
		errs = append(errs, errors.New("pxe: kernel is not set"))
	}
	if c.Initramfs == "" {
		errs = append(errs, errors.New("pxe: initramfs is not set"))
	}
	if c.HTTPPort < 1 || c.HTTPPort > 65535 {
		errs = append(errs, fmt.Errorf("pxe: http_port %d out of range", c.HTTPPort))
	}
	if strings.Contains(c.Cmdline, "${export}") && c.Default.Export == "" {
		for _, m := range c.Machines {
			if m.Export == "" && !m.Refuse {
				errs = append(errs, fmt.Errorf("pxe: machine %s has no export and [pxe.default] names none", m.MAC))
			}
		}
		if !c.Default.Refuse {
			errs = append(errs, errors.New("pxe: the command line uses ${export} but [pxe.default] names no export"))
		}
	}
	if c.Default.MAC != "" {
		errs = append(errs, errors.New("pxe: [pxe.default] takes no mac"))
	}
	if _, err := newMachines(c.Default, c.Machines); err != nil {
		errs = append(errs, err)
	}
	if c.MaxTransfersPerAddress < 0 || c.MaxTransfersPerAddress > maxTransfers {
		errs = append(errs, fmt.Errorf("pxe: max_transfers_per_address %d: not within 1-%d (the transfers served at once)", c.MaxTransfersPerAddress, maxTransfers))
	}
	if c.MaxHTTPPerAddress < 0 || c.MaxHTTPPerAddress > maxHTTPConns {
		errs = append(errs, fmt.Errorf("pxe: max_http_per_address %d: not within 1-%d (the HTTP connections served at once)", c.MaxHTTPPerAddress, maxHTTPConns))
	}
	if c.StallTimeout < 0 {
		errs = append(errs, fmt.Errorf("pxe: stall_timeout %s is negative", time.Duration(c.StallTimeout)))
	}
	if c.DHCP != nil {
		p, err := c.DHCP.pool()
		if err != nil {
			errs = append(errs, err)
		} else if n := len(c.Machines); uint32(n) > p.last-p.first+1 {
			errs = append(errs, fmt.Errorf("pxe: %d machines listed in [[pxe.machine]] but the dhcp range %s-%s has %d addresses: each listed machine keeps one", n, c.DHCP.RangeStart, c.DHCP.RangeEnd, p.last-p.first+1))
		}
		if c.DHCP.NewLeasesPerMinute < 0 {
			errs = append(errs, fmt.Errorf("pxe: dhcp new_leases_per_minute %d is negative", c.DHCP.NewLeasesPerMinute))
		}
		if c.DHCP.KnownOnly && len(c.Machines) == 0 {
			errs = append(errs, errors.New("pxe: dhcp known_only is set but no [[pxe.machine]] is listed: no machine would get an address"))
		}
		if c.DHCP.Router != "" && net.ParseIP(c.DHCP.Router).To4() == nil {
			errs = append(errs, fmt.Errorf("pxe: dhcp router %q is not an IPv4 address", c.DHCP.Router))
		}
	}
	return errors.Join(errs...)
}
