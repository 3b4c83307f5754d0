package nbdnl

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Device names an nbd device, or a partition of one: /dev/nbdN[pM]. It is
// the one parser of such names, used for root= and nbdroot='s ",nbdX" on
// the command line and for the administrator's arguments.
type Device struct {
	Index     uint32
	Partition int // 0: the whole device; else 1…65535
}

// Path returns /dev/nbdN or /dev/nbdNpM.
func (d Device) Path() string {
	if d.Partition == 0 {
		return DevicePath(d.Index)
	}
	return fmt.Sprintf("/dev/nbd%dp%d", d.Index, d.Partition)
}

// String is Path.
func (d Device) String() string { return d.Path() }

var errNotNBD = errors.New("not /dev/nbdN or /dev/nbdNpM")

// ParseDevice parses "/dev/nbdN", "/dev/nbdNpM" or the same without
// "/dev/". Numbers have no leading zeros; partitions start at 1.
func ParseDevice(dev string) (Device, error) {
	name := strings.TrimPrefix(dev, "/dev/")
	rest, ok := strings.CutPrefix(name, "nbd")
	if !ok {
		return Device{}, fmt.Errorf("device %q: %w", dev, errNotNBD)
	}
	num, part, hasPart := strings.Cut(rest, "p")
	idx, err := parseDecimal(num, 32)
	if err != nil {
		return Device{}, fmt.Errorf("device %q: number %w", dev, err)
	}
	d := Device{Index: uint32(idx)}
	if hasPart {
		p, err := parseDecimal(part, 16)
		if err != nil || p == 0 {
			return Device{}, fmt.Errorf("device %q: partition must be a number from 1 to 65535", dev)
		}
		d.Partition = int(p)
	}
	return d, nil
}

// parseDecimal parses digits without sign or leading zeros into bits bits.
func parseDecimal(s string, bits int) (uint64, error) {
	if s == "" {
		return 0, errors.New("missing")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not decimal digits", s)
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%q has a leading zero", s)
	}
	n, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return n, nil
}

// DeviceIndex parses "/dev/nbdN" (or "nbdN") into N. Partitions
// ("/dev/nbd0p1") and other devices are refused.
func DeviceIndex(dev string) (uint32, error) {
	d, err := ParseDevice(dev)
	if err != nil {
		return 0, err
	}
	if d.Partition != 0 {
		return 0, fmt.Errorf("device %q: a partition, not a whole /dev/nbdN", dev)
	}
	return d.Index, nil
}
