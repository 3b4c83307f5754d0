package boot

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/nbdboot/nbdboot/nbdnl"
	"github.com/nbdboot/nbdboot/protocol"
)

// NewDialer is the boot's TCP dialer: Go sets TCP_NODELAY; keepalive
// notices a dead server within about 30s.
func NewDialer() *net.Dialer {
	return &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3,
	}}
}

// Negotiate runs protocol.ClientHandshake on conn within ctx's deadline,
// asking for req.Name(): the export name with the client id as its suffix.
func Negotiate(ctx context.Context, conn net.Conn, req NegotiateRequest) (protocol.ExportInfo, error) {
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
		defer conn.SetDeadline(time.Time{})
	}
	n, err := protocol.ClientHandshake(conn, protocol.ClientOptions{Export: req.Name()})
	if err != nil {
		return protocol.ExportInfo{}, err
	}
	return n.ExportInfo, nil
}

// NetlinkDevice attaches over the nbd generic netlink family, or, where
// the kernel has no such family (or req.Ioctl forces it), with the ioctls
// in a keeper process: with ioctls the attaching process must live as long
// as the device, and PID 1 becomes another program at switch_root.
type NetlinkDevice struct {
	Sys nbdnl.Sys
	// Dial opens the netlink connection; nil means nbdnl.Dial.
	Dial func() (NetlinkConn, error)
	// Keeper starts the ioctl keeper process; nil means ExecKeeper{}.
	Keeper KeeperStarter
}

// NetlinkConn is the part of *nbdnl.Conn the attachment uses.
type NetlinkConn interface {
	Connect(cfg nbdnl.ConnectConfig) (uint32, error)
	Close() error
}

func (d NetlinkDevice) dial() (NetlinkConn, error) {
	if d.Dial != nil {
		return d.Dial()
	}
	c, err := nbdnl.Dial()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Attach hands the connections' sockets to the kernel.
func (d NetlinkDevice) Attach(ctx context.Context, req AttachRequest) (Attached, error) {
	files, err := SocketFiles(req.Conns)
	if err != nil {
		return Attached{}, err
	}
	defer closeFiles(files)
	if req.Ioctl {
		return d.attachIoctl(ctx, req, files, "nbdboot.attach=ioctl")
	}
	nl, err := d.dial()
	if errors.Is(err, nbdnl.ErrNoFamily) {
		return d.attachIoctl(ctx, req, files, "no nbd netlink family")
	}
	if err != nil {
		return Attached{}, err
	}
	defer nl.Close()
	cfg := req.ConnectConfig
	cfg.Sockets = files
	idx, err := nl.Connect(cfg)
	if err != nil {
		return Attached{}, err
	}
	if err := d.Sys.WaitConnected(ctx, idx, 10*time.Second); err != nil {
		return Attached{Index: idx}, err
	}
	return Attached{Index: idx}, nil
}

// RescanPartitions rereads the partition table (BLKRRPART).
func (d NetlinkDevice) RescanPartitions(dev string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return nbdnl.RescanPartitions(ctx, dev)
}

// WaitPath waits for a device node.
func (d NetlinkDevice) WaitPath(ctx context.Context, path string) error {
	return WaitForPath(ctx, path)
}

// NetlinkWatch subscribes to the nbd driver's LINK_DEAD notifications.
func NetlinkWatch(ctx context.Context) (<-chan LinkDead, error) {
	nl, err := nbdnl.Dial()
	if err != nil {
		return nil, err
	}
	idx, err := nl.WatchLinkDead(ctx)
	if err != nil {
		nl.Close()
		return nil, err
	}
	out := make(chan LinkDead)
	go func() {
		defer nl.Close()
		defer close(out)
		for i := range idx {
			select {
			case out <- LinkDead{Index: i}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
