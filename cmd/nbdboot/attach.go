package main

// The administrator's subcommands on a running system: attach, detach and
// list. They need root (CAP_SYS_ADMIN) for everything but listing a
// server's exports.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"text/tabwriter"
	"time"

	"github.com/nbdboot/nbdboot/boot"
	"github.com/nbdboot/nbdboot/bootcfg"
	"github.com/nbdboot/nbdboot/internal/printable"
	"github.com/nbdboot/nbdboot/nbdnl"
	"github.com/nbdboot/nbdboot/protocol"
)

// Bounds for the admin commands.
const (
	adminDialTimeout    = 10 * time.Second
	adminTimeout        = 30 * time.Second // dial and handshake of one connection, or a listing
	maxAdminConnections = 64
)

// attachArgs is the parsed command line of `nbdboot attach`.
type attachArgs struct {
	uri         bootcfg.Address
	index       *uint32 // nil: the kernel picks
	connections int
	timeout     time.Duration
	deadConn    time.Duration
}

func parseAttachArgs(args []string) (attachArgs, error) {
	fs := flag.NewFlagSet("attach", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var a attachArgs
	fs.IntVar(&a.connections, "connections", 1, "sockets per device (used only if the export allows multiple connections)")
	fs.DurationVar(&a.timeout, "timeout", 0, "request timeout (0: the kernel's default of 30s)")
	fs.DurationVar(&a.deadConn, "deadconn", 0, "how long I/O waits for a reconnect when every socket is dead (0: fail at once)")
	if err := fs.Parse(args); err != nil {
		return attachArgs{}, fmt.Errorf("attach: %w (usage: nbdboot attach [-connections N] [-timeout D] [-deadconn D] nbd://HOST[:PORT]/EXPORT [/dev/nbdN])", err)
	}
	if a.connections < 1 || a.connections > maxAdminConnections {
		return attachArgs{}, fmt.Errorf("attach: -connections %d: must be from 1 to %d", a.connections, maxAdminConnections)
	}
	if a.timeout < 0 || a.deadConn < 0 {
		return attachArgs{}, fmt.Errorf("attach: -timeout and -deadconn must not be negative")
	}
	rest := fs.Args()
	if len(rest) < 1 || len(rest) > 2 {
		return attachArgs{}, fmt.Errorf("attach: want nbd://HOST[:PORT]/EXPORT [/dev/nbdN], got %d arguments", len(rest))
	}
	u, err := bootcfg.ParseURI(rest[0])
	if err != nil {
		return attachArgs{}, fmt.Errorf("attach: %w", err)
	}
	a.uri = u
	if len(rest) == 2 {
		idx, err := nbdnl.DeviceIndex(rest[1])
		if err != nil {
			return attachArgs{}, fmt.Errorf("attach: %w", err)
		}
		a.index = &idx
	}
	return a, nil
}

// runAttach attaches an export to a local /dev/nbdN and prints the device.
func runAttach(args []string) error {
	a, err := parseAttachArgs(args)
	if err != nil {
		return err
	}
	ctx := context.Background()
	info, socks, err := dialExport(ctx, a.uri, a.connections, os.Stderr)
	if err != nil {
		return fmt.Errorf("attach %s: %w", a.uri, err)
	}
	defer closeAll(socks) // the kernel holds its own references
	cfg, err := attachConfig(a, info, socks, os.Getpagesize())
	if err != nil {
		return fmt.Errorf("attach %s: %w", a.uri, err)
	}
	idx, sess, err := nbdnl.DefaultSys().Attach(ctx, cfg)
	if err != nil {
		return fmt.Errorf("attach %s: %w", a.uri, err)
	}
	fmt.Println(nbdnl.DevicePath(idx))
	if sess == nil {
		return nil
	}
	// The ioctl interface ties the device to this process.
	closeAll(socks)
	fmt.Fprintf(os.Stderr, "nbdboot: kernel without nbd netlink: staying in the foreground while %s is attached\n", nbdnl.DevicePath(idx))
	if err := sess.Err(); err != nil {
		return fmt.Errorf("attach %s to %s: %w", a.uri, nbdnl.DevicePath(idx), err)
	}
	return nil
}

// attachConfig turns the negotiated export into the kernel's
// configuration, by the one rule of nbdnl.ExportConfig: the block size is
// the export's minimum rounded up to a power of two from 512 (refused
// above the page size), and the size is rounded down to whole blocks.
func attachConfig(a attachArgs, info protocol.ExportInfo, socks []*os.File, pageSize int) (nbdnl.ConnectConfig, error) {
	cfg, err := nbdnl.ExportConfig(info, 0, pageSize)
	if err != nil {
		return nbdnl.ConnectConfig{}, err
	}
	cfg.Index, cfg.Timeout, cfg.DeadConnTimeout = a.index, a.timeout, a.deadConn
	cfg.Sockets, cfg.BackendID = socks, a.uri.String()
	return cfg, nil
}

// dialExport opens up to n connections to the export and negotiates each,
// with the boot's own pipeline (boot.Connector). More than one is opened
// only when the export allows multiple connections; otherwise a note goes
// to warn. It returns the sockets as files, ready for the kernel.
func dialExport(ctx context.Context, u bootcfg.Address, n int, warn io.Writer) (protocol.ExportInfo, []*os.File, error) {
	c := boot.Connector{Dialer: boot.NewDialer(), Negotiate: boot.Negotiate, Timeout: adminTimeout}
	conn, info, err := c.Open(ctx, u.Server, boot.NegotiateRequest{Export: u.Export})
	if err != nil {
		return protocol.ExportInfo{}, nil, err
	}
	s := &boot.Session{Target: u, Export: info, Conns: []net.Conn{conn}}
	defer s.Close() // the files are duplicates
	want := boot.Connections(n, info.Flags)
	if n > 1 && want == 1 {
		fmt.Fprintf(warn, "nbdboot: export %q does not allow multiple connections; using one\n", u.Export)
	}
	if err := c.More(ctx, s, want); err != nil {
		return protocol.ExportInfo{}, nil, err
	}
	files, err := boot.SocketFiles(s.Conns)
	if err != nil {
		return protocol.ExportInfo{}, nil, err
	}
	return info, files, nil
}

func closeAll(fs []*os.File) {
	for _, f := range fs {
		f.Close()
	}
}

// runDetach disconnects a /dev/nbdN.
func runDetach(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("detach: want one /dev/nbdN, got %d arguments", len(args))
	}
	idx, err := nbdnl.DeviceIndex(args[0])
	if err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	c, err := nbdnl.Dial()
	if errors.Is(err, nbdnl.ErrNoFamily) {
		return nbdnl.DisconnectIoctl(nbdnl.DefaultSys().Node(idx))
	}
	if err != nil {
		return fmt.Errorf("detach %s: %w", args[0], err)
	}
	defer c.Close()
	return c.Disconnect(idx)
}

// runList lists a server's exports, or with no argument the local nbd
// devices.
func runList(args []string) error {
	switch len(args) {
	case 0:
		return listLocal(os.Stdout, nbdnl.DefaultSys())
	case 1:
	default:
		return fmt.Errorf("list: want nothing or nbd://HOST[:PORT], got %d arguments", len(args))
	}
	u, err := bootcfg.ParseURI(args[0])
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	if u.Export != "" {
		return fmt.Errorf("list: %s names export %q; give only nbd://HOST[:PORT]", args[0], u.Export)
	}
	d := net.Dialer{Timeout: adminDialTimeout}
	c, err := d.DialContext(context.Background(), "tcp", u.Addr())
	if err != nil {
		return fmt.Errorf("list %s: %w", u.Addr(), err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(adminTimeout)); err != nil {
		return err
	}
	return listExports(os.Stdout, c, u.Addr())
}

// listExports prints the exports of the server on rw, one per line: name
// (`(default)` for the empty name) and description.
func listExports(w io.Writer, rw io.ReadWriter, server string) error {
	exports, err := protocol.ClientList(rw)
	if err != nil {
		return fmt.Errorf("list %s: %w", server, err)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, e := range exports {
		name := printable.Name(e.Name)
		if e.Name == "" {
			name = "(default)"
		}
		fmt.Fprintf(tw, "%s\t%s\n", name, printable.Text(e.Description))
	}
	return tw.Flush()
}

// localDevice is one row of `nbdboot list` without arguments.
type localDevice struct {
	index     uint32
	connected bool
	pid       int // 0: none
	backend   string
	size      uint64
}

// listLocal prints the local nbd devices: their state from the kernel
// (netlink STATUS, or sysfs on kernels without it), the connecting pid, the
// backend identifier and the size.
func listLocal(w io.Writer, sys nbdnl.Sys) error {
	devs, err := localDevices(sys)
	if err != nil {
		return fmt.Errorf("list: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tSTATE\tSIZE\tPID\tBACKEND")
	for _, d := range devs {
		state, pid := "free", "-"
		if d.connected {
			state = "connected"
		}
		if d.pid != 0 {
			pid = fmt.Sprint(d.pid)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", nbdnl.DevicePath(d.index), state, d.size, pid, printable.Text(d.backend))
	}
	return tw.Flush()
}

func localDevices(sys nbdnl.Sys) ([]localDevice, error) {
	var devs []localDevice
	c, err := nbdnl.Dial()
	switch {
	case errors.Is(err, nbdnl.ErrNoFamily):
		idxs, err := sys.Devices()
		if err != nil {
			return nil, err
		}
		for _, i := range idxs {
			devs = append(devs, localDevice{index: i})
		}
	case err != nil:
		return nil, err
	default:
		defer c.Close()
		st, err := c.Status(nil)
		if err != nil {
			return nil, err
		}
		for _, s := range st {
			devs = append(devs, localDevice{index: s.Index, connected: s.Connected})
		}
	}
	for i := range devs {
		fillSysInfo(sys, &devs[i])
	}
	return devs, nil
}

// fillSysInfo adds what sysfs knows; missing files leave zero values.
func fillSysInfo(sys nbdnl.Sys, d *localDevice) {
	if pid, ok, err := sys.PID(d.index); err == nil && ok {
		d.pid = pid
		d.connected = true
	}
	if b, ok, err := sys.Backend(d.index); err == nil && ok {
		d.backend = b
	}
	if size, err := sys.Size(d.index); err == nil {
		d.size = size
	}
}
