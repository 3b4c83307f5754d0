package cow

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// reclaim punches out of the data file the blocks that are allocated
// there but not in state Data: writes whose state change a crash lost.
// Their bytes are never read, so this only returns disk space. It walks
// the file's data regions with SEEK_DATA and SEEK_HOLE; where those are
// unsupported it does nothing.
func (o *Overlay) reclaim() error {
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
		hole = min(hole, o.size)
		b0, limit := data>>o.shift, (hole-1)>>o.shift+1
		for b := b0; b < limit; {
			s, n := o.states.run(b, limit)
			if s != StateData {
				start, end := b<<o.shift, min((b+n)<<o.shift, o.size)
				err := o.dataW.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, start, end-start)
				if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
					return nil
				} else if err != nil {
					return fmt.Errorf("reclaim: punch %d+%d: %w", start, end-start, err)
				}
			}
			b += n
		}
		pos = max(hole, data+1)
	}
	return nil
}
