package boot

import (
	"fmt"
	"time"

	"github.com/nbdboot/nbdboot/bootcfg"
	"github.com/nbdboot/nbdboot/nbdnl"
)

// Config is what the boot flow needs from the kernel command line. It is
// filled by CommandLine (cmdline.go) from package bootcfg's parse.
type Config struct {
	Servers  []bootcfg.Address // tried in order
	FromDHCP bool              // nbdroot=dhcp: the target is the DHCP root-path
	IP       []string          // raw ip= values, none when absent

	Root       string // root=, "" (whole device), /dev/nbdN or /dev/nbdNpM
	RootFSType string // rootfstype=, "" to probe the superblock
	RootFlags  string // rootflags=
	ReadWrite  bool   // rw (the default, like the kernel's, is ro)
	Init       string // init=, "" for the default search
	InitArgs   []string

	BlockSize   uint32        // bs= in the target's options; 0: see blockSize
	Connections int           // nbdboot.connections
	Timeout     time.Duration // nbdboot.timeout: per-request timeout
	DeadConn    time.Duration // nbdboot.deadconn: wait for a new socket
	Retry       time.Duration // nbdboot.retry: deadline for network and server
	Debug       bool          // nbdboot.debug
	Overlay     string        // nbdboot.overlay: "" or "tmpfs"
	AttachIoctl bool          // nbdboot.attach=ioctl: no netlink for the root
	ClientID    string        // nbdboot.clientid
	Modules     []string      // nbdboot.modules: extra modules to load
	Shell       bool          // nbdboot.shell / rd.shell: rescue shell on failure
	Breaks      []string      // rd.break points: BreakPreMount, BreakMount, BreakPrePivot
}

// Break points, dracut's names.
const (
	BreakPreMount = "pre-mount" // network up, before the device is attached
	BreakMount    = "mount"     // device attached, before the root is mounted
	BreakPrePivot = "pre-pivot" // root mounted, before switch_root (bare rd.break)
)

func (c *Config) breakAt(point string) bool {
	for _, b := range c.Breaks {
		if b == point {
			return true
		}
	}
	return false
}

// DefaultRetry is the network and server deadline when Config.Retry is 0.
const DefaultRetry = 60 * time.Second

func (c *Config) retry() time.Duration {
	if c.Retry <= 0 {
		return DefaultRetry
	}
	return c.Retry
}

// RootDevice is the parsed root= value.
type RootDevice struct {
	Index     *uint32 // nil: let the kernel pick a free device
	Partition int     // 0: the whole device
}

// ParseRootDevice parses root= for an NBD root: "", /dev/nbdN or /dev/nbdNpM.
func ParseRootDevice(root string) (RootDevice, error) {
	if root == "" {
		return RootDevice{}, nil
	}
	d, err := nbdnl.ParseDevice(root)
	if err != nil {
		return RootDevice{}, fmt.Errorf("root=%s: %w", root, err)
	}
	return RootDevice{Index: &d.Index, Partition: d.Partition}, nil
}

// DevicePath is /dev/nbdN for an index.
func DevicePath(index uint32) string { return nbdnl.DevicePath(index) }

// PartitionPath is /dev/nbdNpM.
func PartitionPath(index uint32, part int) string {
	return nbdnl.Device{Index: index, Partition: part}.Path()
}
