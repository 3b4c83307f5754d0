package bootcfg

import (
	"fmt"
	"time"

	"github.com/nbdboot/nbdboot/nbdnl"
)

// Boot is what the init needs once the target is known: the command line's
// settings merged with the target's, command line first.
type Boot struct {
	Target          Target
	Device          string // the NBD device to attach, /dev/nbdN
	Root            string // the device to mount: Device or a partition of it
	FSType          string // rootfstype=, else the target's FSTYPE; "" to probe
	Flags           string // rootflags=, else the target's ROOTFLAGS
	ReadOnly        bool
	Connections     int           // nbdboot.connections=, else connections= in OPTIONS, else 1
	RequestTimeout  time.Duration // nbdboot.timeout=, else timeout= in OPTIONS, else 30s
	DeadConnTimeout time.Duration
	BlockSize       uint32 // bs= in OPTIONS; 0 lets the server's preference decide
}

// Resolve merges c with t (c.NBD, or the target parsed from the DHCP
// root-path). It fails when root= and the target name different devices.
func (c *Config) Resolve(t Target) (Boot, error) {
	dev, err := c.device(t)
	if err != nil {
		return Boot{}, err
	}
	b := Boot{
		Target:          t,
		Device:          dev,
		Root:            dev,
		FSType:          firstNonEmpty(c.RootFSType, t.FSType),
		Flags:           firstNonEmpty(c.RootFlags, t.RootFlags),
		ReadOnly:        c.ReadOnly,
		Connections:     c.Connections,
		RequestTimeout:  c.RequestTimeout,
		DeadConnTimeout: c.DeadConnTimeout,
		BlockSize:       t.Options.BlockSize,
	}
	if c.RootDevice != "" {
		b.Root = c.RootDevice
	}
	if !c.connectionsSet && t.Options.Connections != 0 {
		b.Connections = t.Options.Connections
	}
	if !c.timeoutSet && t.Options.Timeout != 0 {
		b.RequestTimeout = t.Options.Timeout
	}
	return b, nil
}

// device returns the whole NBD device to attach.
func (c *Config) device(t Target) (string, error) {
	dev := DefaultDevice
	if c.RootDevice != "" {
		d, _ := nbdnl.ParseDevice(c.RootDevice) // checked by Parse
		dev = nbdnl.DevicePath(d.Index)
	}
	if t.Device != "" {
		if c.RootDevice != "" && t.Device != dev {
			return "", fmt.Errorf("root=%s conflicts with device %s named in nbdroot=", c.RootDevice, t.Device)
		}
		dev = t.Device
	}
	return dev, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
