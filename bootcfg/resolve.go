package bootcfg

import (
	"fmt"
	"time"

	"github.com/nbdboot/nbdboot/nbdnl"
)

// Boot is what the init needs once the target is known: the command line's
// settings merged with the target's, command line first. It is the root
// half of the boot's configuration (package boot keeps the Config for the
// rest: network, modules, retry, overlay, shell).
type Boot struct {
	Target Target
	// Root is the device to attach (Index) and to mount: the whole device,
	// or with root=/dev/nbdNpM a partition of it.
	Root            nbdnl.Device
	FSType          string // rootfstype=, else the target's FSTYPE; "" to probe
	Flags           string // rootflags=, else the target's ROOTFLAGS
	ReadOnly        bool
	Connections     int           // nbdboot.connections=, else connections= in OPTIONS, else 1
	RequestTimeout  time.Duration // nbdboot.timeout=, else timeout= in OPTIONS, else DefaultRequestTimeout
	DeadConnTimeout time.Duration
	BlockSize       uint32 // bs= in OPTIONS; 0 lets the server's minimum decide (nbdnl.BlockSize)
}

// Addresses are the target's servers, in order, each with the export.
func (b Boot) Addresses() []Address {
	out := make([]Address, len(b.Target.Servers))
	for i, s := range b.Target.Servers {
		out[i] = Address{Server: s, Export: b.Target.Export}
	}
	return out
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
		Root:            dev,
		FSType:          firstNonEmpty(c.RootFSType, t.FSType),
		Flags:           firstNonEmpty(c.RootFlags, t.RootFlags),
		ReadOnly:        c.ReadOnly,
		Connections:     c.Connections,
		RequestTimeout:  c.RequestTimeout,
		DeadConnTimeout: c.DeadConnTimeout,
		BlockSize:       t.Options.BlockSize,
	}
	if !c.connectionsSet && t.Options.Connections != 0 {
		b.Connections = t.Options.Connections
	}
	if !c.timeoutSet && t.Options.Timeout != 0 {
		b.RequestTimeout = t.Options.Timeout
	}
	return b, nil
}

// defaultDevice is the root device when neither root= nor nbdroot= names
// one: /dev/nbd0.
var defaultDevice = nbdnl.Device{Index: 0}

// device returns the root device: root=, else the target's device, else
// defaultDevice. root= may name a partition of the target's device, not
// another device.
func (c *Config) device(t Target) (nbdnl.Device, error) {
	switch {
	case c.RootDevice != nil && t.Device != nil && c.RootDevice.Index != t.Device.Index:
		return nbdnl.Device{}, fmt.Errorf("root=%s conflicts with device %s named in nbdroot=", c.RootDevice.Path(), t.Device.Path())
	case c.RootDevice != nil:
		return *c.RootDevice, nil
	case t.Device != nil:
		return *t.Device, nil
	}
	return defaultDevice, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
