package boot

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nbdboot/nbdboot/bootcfg"
	"github.com/nbdboot/nbdboot/nbdnl"
)

// attach hands the session's connections to the kernel and returns the
// device index; the session's connections are closed afterwards (the
// kernel holds the sockets).
func (b *booter) attach(ctx context.Context, s *Session) (Attached, error) {
	ph := b.log.Phase("attach")
	defer s.Close()
	cc, err := nbdnl.ExportConfig(s.Export, b.root.BlockSize, os.Getpagesize())
	if err != nil {
		return Attached{}, fail("attach", fmt.Errorf("%s: %w", s.Target, err), hintConnect)
	}
	if cc.Size != s.Export.Size {
		ph.Printf("export size %d is not a multiple of the block size %d: using %d", s.Export.Size, cc.BlockSize, cc.Size)
	}
	idx := b.root.Root.Index
	cc.Index, cc.Timeout, cc.DeadConnTimeout, cc.BackendID = &idx, b.root.RequestTimeout, b.root.DeadConnTimeout, s.Target.String()
	req := AttachRequest{ConnectConfig: cc, Conns: s.Conns, Ioctl: b.cfg.Attach == bootcfg.AttachIoctl}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	att, err := b.env.Device.Attach(ctx, req)
	if err != nil {
		dev := nbdnl.DevicePath(idx)
		return Attached{}, fail("attach", fmt.Errorf("attach %s to %s: %w", s.Target, dev, err), hintAttach)
	}
	att.BlockSize = cc.BlockSize
	via := ""
	if att.Ioctl {
		via = " via ioctl (" + att.Why + ")"
	}
	ph.Done("%s on %s, %d connection(s), block size %d, timeout %s, dead-conn timeout %s%s",
		s.Target, nbdnl.DevicePath(att.Index), len(s.Conns), req.BlockSize, req.Timeout, req.DeadConnTimeout, via)
	return att, nil
}

// rootDevice waits for the root device node: the partition after a
// rescan, or the whole device.
func (b *booter) rootDevice(ctx context.Context, idx uint32) (string, error) {
	partition := b.root.Root.Partition
	dev := nbdnl.DevicePath(idx)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if partition == 0 {
		if err := b.env.Device.WaitPath(ctx, dev); err != nil {
			return "", fail("attach", fmt.Errorf("wait for %s: %w", dev, err), hintAttach)
		}
		return dev, nil
	}
	ph := b.log.Phase("partitions")
	part := nbdnl.Device{Index: idx, Partition: partition}.Path()
	if err := b.env.Device.RescanPartitions(dev); err != nil {
		return "", fail("partitions", fmt.Errorf("rescan partitions of %s: %w", dev, err), hintPartition)
	}
	if err := b.env.Device.WaitPath(ctx, part); err != nil {
		return "", fail("partitions", fmt.Errorf("wait for %s: %w", part, err), hintPartition)
	}
	ph.Done("%s", part)
	return part, nil
}
