package media

import (
	"fmt"
	"os"
	"time"
)

// Kind is the kind of medium to build.
type Kind string

// Kinds. USB and ISO are the same hybrid image: it boots when written to a
// USB stick and when burnt to a CD.
const (
	USB    Kind = "usb"
	ISO    Kind = "iso"
	Floppy Kind = "floppy"
)

// ParseKind parses usb, iso or floppy.
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case USB, ISO, Floppy:
		return k, nil
	}
	return "", fmt.Errorf("unknown medium %q: want usb, iso or floppy", s)
}

// Hybrid reports whether k is the hybrid USB/CD image.
func (k Kind) Hybrid() bool { return k == USB || k == ISO }

// DefaultTimeout is how long the boot menu waits before booting.
const DefaultTimeout = 5 * time.Second

// DefaultServer is the floppy's HTTP server when none is given: iPXE puts
// in the address of the DHCP (or proxyDHCP) server that answered it.
const DefaultServer = "http://${next-server}"

// Config says what to build.
type Config struct {
	Kind   Kind
	Output string // the image file; replaced by rename once complete

	// Kernel and Initramfs are local files, put on the hybrid image.
	Kernel    string
	Initramfs string
	// Cmdline is the kernel command line (nbdboot's parameters and
	// console=…); it must name the root (nbdroot=…).
	Cmdline string
	// Timeout is how long the boot menu waits; 0 boots at once.
	Timeout time.Duration

	// KernelURL and InitramfsURL are what the floppy fetches; they may
	// use iPXE settings such as ${next-server}. Default: Server + "/kernel"
	// and Server + "/initramfs".
	KernelURL    string
	InitramfsURL string
	// Server is the floppy's base URL; default DefaultServer.
	Server string

	// Loaders are Debian's boot loader files; zero fields take
	// DefaultLoaders' paths.
	Loaders Loaders
	// Epoch is every timestamp in the image; zero is Epoch().
	Epoch time.Time
}

// defaultEpoch is the images' time when SOURCE_DATE_EPOCH is not set:
// 2020-01-01 00:00:00 UTC (FAT cannot hold times before 1980).
var defaultEpoch = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// Epoch is the images' timestamp: $SOURCE_DATE_EPOCH if set (the
// reproducible-builds convention), else 2020-01-01 UTC.
func Epoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return defaultEpoch, nil
	}
	var sec int64
	if _, err := fmt.Sscan(s, &sec); err != nil || sec < 315532800 { // 1980-01-01
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970, 1980 or later", s)
	}
	return time.Unix(sec, 0).UTC(), nil
}

// withDefaults fills in the zero fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if _, err := ParseKind(string(c.Kind)); err != nil {
		return c, err
	}
	if c.Output == "" {
		return c, fmt.Errorf("no output file given")
	}
	if c.Timeout < 0 {
		return c, fmt.Errorf("timeout %v: must not be negative", c.Timeout)
	}
	if c.Epoch.IsZero() {
		e, err := Epoch()
		if err != nil {
			return c, err
		}
		c.Epoch = e
	}
	// FAT keeps even seconds; one time everywhere.
	c.Epoch = c.Epoch.UTC().Truncate(2 * time.Second)
	c.Loaders = c.Loaders.withDefaults()
	if c.Kind.Hybrid() {
		if c.Kernel == "" || c.Initramfs == "" {
			return c, fmt.Errorf("%s image: a kernel and an initramfs are required", c.Kind)
		}
		if err := checkCmdline(c.Cmdline, false); err != nil {
			return c, err
		}
		return c, nil
	}
	if c.Server == "" {
		c.Server = DefaultServer
	}
	if c.KernelURL == "" {
		c.KernelURL = c.Server + "/kernel"
	}
	if c.InitramfsURL == "" {
		c.InitramfsURL = c.Server + "/initramfs"
	}
	for _, u := range []string{c.KernelURL, c.InitramfsURL} {
		if err := checkURL(u); err != nil {
			return c, err
		}
	}
	if err := checkCmdline(c.Cmdline, true); err != nil {
		return c, err
	}
	return c, nil
}
