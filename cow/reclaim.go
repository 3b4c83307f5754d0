package cow

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// reclaim punches out of the data file the blocks that are allocated
// there but not in state Data: writes whose state change a crash lost.
// Their bytes are never read, so this only returns disk space. It asks
// the file system for the file's extents in batches (FIEMAP: a few system
// calls for an overlay of thousands of scattered blocks, which a client
// reconnecting to a closed overlay would otherwise wait for), else walks
// the data regions with SEEK_DATA and SEEK_HOLE; where neither works it
// does nothing.
func (o *Overlay) reclaim() error {
	if done, err := o.reclaimFiemap(); done || err != nil {
		return err
	}
	return o.reclaimSeek()
}

// FIEMAP (linux/fiemap.h): the request header, then its extents.
const (
	fsIocFiemap      = 0xc020660b // _IOWR('f', 11, struct fiemap)
	fiemapExtentLast = 0x1
	fiemapBatch      = 512
)

type fiemapExtent struct {
	logical, physical, length uint64
	_                         [2]uint64
	flags                     uint32
	_                         [3]uint32
}

type fiemapReq struct {
	start, length                uint64
	flags, mapped, count, unused uint32
	ext                          [fiemapBatch]fiemapExtent
}

// reclaimFiemap is reclaim by FIEMAP; it reports false, having changed
// nothing, if the file system does not support it.
func (o *Overlay) reclaimFiemap() (bool, error) {
	req := new(fiemapReq)
	for pos := int64(0); pos < o.size; {
		*req = fiemapReq{start: uint64(pos), length: uint64(o.size - pos), count: fiemapBatch}
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(o.dfd), fsIocFiemap, uintptr(unsafe.Pointer(req)))
		switch {
		case e != 0 && pos == 0:
			return false, nil // unsupported here: SEEK_DATA instead
		case e != 0:
			return true, fmt.Errorf("reclaim: extents at %d: %w", pos, e)
		case req.mapped == 0 || req.mapped > fiemapBatch:
			return true, nil
		}
		for _, x := range req.ext[:req.mapped] {
			start, end := max(int64(x.logical), pos), min(int64(x.logical+x.length), o.size)
			if start < end {
				if stop, err := o.punchNonData(start, end); stop || err != nil {
					return true, err
				}
			}
			if x.flags&fiemapExtentLast != 0 {
				return true, nil
			}
		}
		last := req.ext[req.mapped-1]
		pos = max(int64(last.logical+last.length), pos+1)
	}
	return true, nil
}

// reclaimSeek is reclaim by SEEK_DATA and SEEK_HOLE.
func (o *Overlay) reclaimSeek() error {
	for pos := int64(0); pos < o.size; {
		data, err := unix.Seek(o.dfd, pos, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			return nil
		}
		if err != nil {
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
				return nil
			}
			return fmt.Errorf("reclaim: seek data at %d: %w", pos, err)
		}
		hole, err := unix.Seek(o.dfd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("reclaim: seek hole at %d: %w", data, err)
		}
		if stop, err := o.punchNonData(data, min(hole, o.size)); stop || err != nil {
			return err
		}
		pos = max(hole, data+1)
	}
	return nil
}

// punchNonData punches the blocks of [data, end), an allocated region of
// the data file, that are not in state Data. It reports stop when the
// file system cannot punch holes.
func (o *Overlay) punchNonData(data, end int64) (stop bool, err error) {
	b0, limit := data>>o.shift, (end-1)>>o.shift+1
	for b := b0; b < limit; {
		s, n := o.states.run(b, limit)
		if s != StateData {
			start, end := b<<o.shift, min((b+n)<<o.shift, o.size)
			err := o.dataW.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, start, end-start)
			if notSupported(err) {
				return true, nil
			} else if err != nil {
				return true, fmt.Errorf("reclaim: punch %d+%d: %w", start, end-start, err)
			}
		}
		b += n
	}
	return false, nil
}
