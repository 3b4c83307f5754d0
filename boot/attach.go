package boot

import (
	"context"
	"fmt"
	"time"

	"github.com/nbdboot/nbdboot/protocol"
)

// Logical block sizes the kernel accepts for nbd.
const (
	minBlockSize = 512
	maxBlockSize = 4096
)

// blockSize picks the device's logical block size: bs= when given, else
// the smallest power of two from 512 that the server's minimum allows,
// capped at the page size. Deliberately not the preferred size: a 4096-byte
// logical block makes ext4 with 1 KiB blocks (mke2fs's choice for small
// images) unmountable and misplaces partitions written in 512-byte sectors,
// while the page cache sends page-sized I/O anyway.
func blockSize(exp protocol.ExportInfo, configured uint32) uint64 {
	want := exp.MinBlock
	if configured > want {
		want = configured
	}
	bs := uint64(minBlockSize)
	for bs < uint64(want) && bs < maxBlockSize {
		bs *= 2
	}
	return bs
}

// attach hands the session's connections to the kernel and returns the
// device index; the session's connections are closed afterwards (the
// kernel holds the sockets).
func (b *booter) attach(ctx context.Context, s *session, rd RootDevice) (Attached, error) {
	ph := b.log.Phase("attach")
	defer s.close()
	bs := blockSize(s.export, b.cfg.BlockSize)
	// The kernel cannot address a partial last block.
	size := s.export.Size - s.export.Size%bs
	if size == 0 {
		return Attached{}, fail("attach", fmt.Errorf("export %s: %d bytes, less than one %d-byte block", s.target, s.export.Size, bs), hintConnect)
	}
	if size != s.export.Size {
		ph.Printf("export size %d is not a multiple of the block size %d: using %d", s.export.Size, bs, size)
	}
	req := AttachRequest{
		Index:       rd.Index,
		Size:        size,
		BlockSize:   bs,
		ServerFlags: uint64(s.export.Flags),
		Timeout:     b.cfg.Timeout,
		DeadConn:    b.cfg.DeadConn,
		Conns:       s.conns,
		BackendID:   s.target.String(),
		Ioctl:       b.cfg.AttachIoctl,
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	att, err := b.env.Device.Attach(ctx, req)
	if err != nil {
		dev := "a free /dev/nbdN"
		if rd.Index != nil {
			dev = DevicePath(*rd.Index)
		}
		return Attached{}, fail("attach", fmt.Errorf("attach %s to %s: %w", s.target, dev, err), hintAttach)
	}
	via := ""
	if att.Ioctl {
		via = " via ioctl (" + att.Why + ")"
	}
	ph.Done("%s on %s, %d connection(s), block size %d, timeout %s, dead-conn timeout %s%s",
		s.target, DevicePath(att.Index), len(s.conns), req.BlockSize, req.Timeout, req.DeadConn, via)
	return att, nil
}

// rootDevice waits for the root device node: the partition after a
// rescan, or the whole device.
func (b *booter) rootDevice(ctx context.Context, idx uint32, rd RootDevice) (string, error) {
	dev := DevicePath(idx)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if rd.Partition == 0 {
		if err := b.env.Device.WaitPath(ctx, dev); err != nil {
			return "", fail("attach", fmt.Errorf("wait for %s: %w", dev, err), hintAttach)
		}
		return dev, nil
	}
	ph := b.log.Phase("partitions")
	part := PartitionPath(idx, rd.Partition)
	if err := b.env.Device.RescanPartitions(dev); err != nil {
		return "", fail("partitions", fmt.Errorf("rescan partitions of %s: %w", dev, err), hintPartition)
	}
	if err := b.env.Device.WaitPath(ctx, part); err != nil {
		return "", fail("partitions", fmt.Errorf("wait for %s: %w", part, err), hintPartition)
	}
	ph.Done("%s", part)
	return part, nil
}
