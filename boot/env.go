package boot

import (
	"context"
	"io"
	"net"
	"os"
	"time"

	"github.com/nbdboot/nbdboot/bootcfg"
	"github.com/nbdboot/nbdboot/nbdnl"
	"github.com/nbdboot/nbdboot/protocol"
)

// Env holds one implementation of every step of the boot flow. Run uses
// nothing else, so tests drive the whole sequence with fakes.
type Env struct {
	// ReadCmdline returns the kernel command line (/proc/cmdline).
	ReadCmdline func() (string, error)
	// Parse turns the command line into a bootcfg.Config
	// (ParseCommandLine); its errors name the parameter.
	Parse func(cmdline string) (*bootcfg.Config, error)

	FS         FS
	Modules    Modules
	Network    Network
	Dialer     Dialer
	Negotiate  Negotiator
	Device     Device
	Switch     Switcher
	Supervisor SupervisorStarter
	Shell      Shell
	Clock      Clock
	Log        *Logger
	// Console, when not nil, runs after the early mounts to make sure
	// the console is open on fds 0-2.
	Console func() error
	// Uptime returns the time since the kernel started (/proc/uptime); it
	// may be nil.
	Uptime func() (time.Duration, error)
}

// FS is the file system calls of the boot flow.
type FS interface {
	MkdirAll(path string, perm os.FileMode) error
	// Mount mounts; an already mounted target is not an error (EBUSY).
	Mount(source, target, fstype string, flags uintptr, data string) error
	WriteFile(path string, data []byte, perm os.FileMode) error
	// Open opens a block device for reading its superblock.
	Open(path string) (ReaderAtCloser, error)
}

// ReaderAtCloser is an opened device.
type ReaderAtCloser interface {
	io.ReaderAt
	io.Closer
}

// Modules loads kernel modules. Load of a built-in or already loaded
// module succeeds.
type Modules interface {
	Load(name string) error
	// LoadForDevices loads the drivers of the devices present (modalias),
	// returning the modules it loaded.
	LoadForDevices() ([]string, error)
}

// NetInfo describes the configured network.
type NetInfo struct {
	Interface string
	Index     int // Interface's index, which stays when udev renames it
	MAC       string
	Addrs     []string // CIDR
	Gateway   string
	Method    string // "dhcp", "static", ...
	RootPath  string // DHCP option 17, "" when absent
}

// Network brings up the network as the ip= values say (none means DHCP
// on the first link with a carrier).
type Network interface {
	Up(ctx context.Context, ip []string) (NetInfo, error)
}

// Dialer dials TCP connections (net.Dialer satisfies it).
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// NegotiateRequest is what the client asks for: Export, or with a
// ClientID, the export EXPORT/CLIENT-ID, which a copy-on-write export of
// nbdserve serves from that client's overlay (README, classroom mode).
type NegotiateRequest struct {
	Export   string
	ClientID string // "": none
}

// Name is the export name sent to the server.
func (r NegotiateRequest) Name() string {
	if r.ClientID == "" {
		return r.Export
	}
	return r.Export + "/" + r.ClientID
}

// Negotiator runs the NBD handshake on a fresh connection.
type Negotiator func(ctx context.Context, conn net.Conn, req NegotiateRequest) (protocol.ExportInfo, error)

// AttachRequest is the CONNECT of the root device: the kernel's
// configuration (built from the negotiated export by nbdnl.ExportConfig;
// Sockets is left empty) and the negotiated connections, whose sockets
// the Device hands over.
type AttachRequest struct {
	nbdnl.ConnectConfig
	Conns []net.Conn
	// Ioctl forces the ioctl interface (nbdboot.attach=ioctl); without it
	// the ioctls are used only when the kernel has no nbd netlink family.
	Ioctl bool
}

// Attached is the attached root device.
type Attached struct {
	Index     uint32
	BlockSize uint64 // the device's logical block size
	// Ioctl is set when the device was set up with ioctls: a keeper
	// process holds it, and it cannot be reconfigured.
	Ioctl bool
	// Why says why the ioctls were used ("" for netlink).
	Why string
}

// Device is the kernel's nbd device.
type Device interface {
	// Attach hands the connections to the kernel and returns the device
	// index. The caller closes its connections afterwards.
	Attach(ctx context.Context, req AttachRequest) (Attached, error)
	// RescanPartitions rereads the partition table (BLKRRPART).
	RescanPartitions(dev string) error
	// WaitPath waits until a device node exists or ctx ends.
	WaitPath(ctx context.Context, path string) error
}

// SwitchSpec describes the switch into the new root.
type SwitchSpec struct {
	NewRoot string
	Init    string // requested init (init=), "" for the default search
	Args    []string
	Env     []string
	// AfterChroot runs inside the new root, before the initramfs is deleted
	// and init executed: the supervisor is started there.
	AfterChroot func() error
}

// Switcher switches root and executes init; it returns only on failure.
type Switcher interface {
	Switch(spec SwitchSpec) error
}

// SupervisorStarter starts the resident supervisor process.
type SupervisorStarter interface {
	Start(statePath string) error
}

// Shell runs an interactive shell on the console until it exits.
type Shell interface {
	Run(ctx context.Context, reason string) error
}
