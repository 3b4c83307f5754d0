package media

import (
	"fmt"
	"os"
	"strings"
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

// DefaultServer is the floppy's HTTP server when none is given: the
// floppy's script sets ${server} to the next-server of nbdserve's
// proxyDHCP answer, or without one, of the DHCP server's.
const DefaultServer = "http://${server}"

// MachinePath is where nbdserve's HTTP service ([pxe]) keeps one machine's
// boot files (script.ipxe, kernel, initramfs): iPXE fills in the card's
// MAC address as 52-54-00-12-34-56.
const MachinePath = "/boot/${mac:hexhyp}"

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

	// Server is the floppy's HTTP server, default DefaultServer. With a
	// Cmdline the floppy fetches the kernel and initramfs from it and boots
	// them with that command line; without one it chains the iPXE script
	// the server makes for the machine (nbdserve's [pxe] configuration
	// then decides the export and command line).
	Server string
	// KernelURL, InitramfsURL and ScriptURL replace the URLs on Server
	// (Server + MachinePath + "/kernel", "/initramfs", "/script.ipxe").
	// They may use iPXE settings such as ${server} and ${mac}.
	KernelURL    string
	InitramfsURL string
	ScriptURL    string

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
	// The image is renamed over the output: a device node (a USB stick
	// named directly) would be replaced, not written.
	if fi, err := os.Stat(c.Output); err == nil && !fi.Mode().IsRegular() {
		return c, fmt.Errorf("output %s is not a regular file: build the image into a file, then write it with dd", c.Output)
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
	base := strings.TrimSuffix(c.Server, "/") + MachinePath
	if c.chains() {
		if c.KernelURL != "" || c.InitramfsURL != "" {
			return c, fmt.Errorf("a kernel or initramfs URL needs a command line (-cmdline)")
		}
		if c.ScriptURL == "" {
			c.ScriptURL = base + "/script.ipxe"
		}
		return c, checkURL(c.ScriptURL)
	}
	if c.ScriptURL != "" {
		return c, fmt.Errorf("a script URL takes no command line (the script has its own)")
	}
	if c.KernelURL == "" {
		c.KernelURL = base + "/kernel"
	}
	if c.InitramfsURL == "" {
		c.InitramfsURL = base + "/initramfs"
	}
	for _, u := range []string{c.KernelURL, c.InitramfsURL} {
		if err := checkURL(u); err != nil {
			return c, err
		}
	}
	return c, checkCmdline(c.Cmdline, true)
}

// chains reports whether the floppy chains the server's script rather
// than booting a kernel with its own command line.
func (c Config) chains() bool { return c.Kind == Floppy && strings.TrimSpace(c.Cmdline) == "" }
