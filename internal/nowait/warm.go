package nowait

import (
	"errors"
	"fmt"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// warmChunk is the pages Warm checks with one mincore.
const warmChunk = 512

// Warm enters into the page tables the pages of m, a mapping, that are
// in the page cache (MADV_POPULATE_READ on each run of resident pages),
// so that sending them later takes no page fault and checking their
// residency is a walk of the page tables rather than a page-cache lookup
// per page. A mapping made afresh (an overlay reopened) otherwise pays
// both on its first READs. Only resident pages are asked for: Warm reads
// nothing from the disk but a page evicted between the check and the
// call, and adds no page of a hole to the page cache. It returns when
// stop is set (checked before every call), or with the first failure;
// a page the file no longer has fails the call (EFAULT), it does not
// raise SIGBUS.
func Warm(m []byte, stop *atomic.Bool) error {
	var vec [warmChunk]byte
	chunk := warmChunk * int(pageSize)
	for at := 0; at < len(m); at += chunk {
		if stop.Load() {
			return nil
		}
		p := m[at:min(at+chunk, len(m))]
		v, ok := Pages(p, vec[:])
		if !ok {
			return fmt.Errorf("warm mapping: page residency at %d: mincore failed", at)
		}
		for i := 0; i < len(v); {
			if v[i]&1 == 0 {
				i++
				continue
			}
			j := i + 1
			for j < len(v) && v[j]&1 != 0 {
				j++
			}
			if stop.Load() {
				return nil
			}
			run := p[i*int(pageSize) : min(j*int(pageSize), len(p))]
			if err := unix.Madvise(run, unix.MADV_POPULATE_READ); err != nil {
				if errors.Is(err, unix.EINVAL) {
					return fmt.Errorf("warm mapping: MADV_POPULATE_READ unsupported (Linux 5.14 or later): %w", err)
				}
				return fmt.Errorf("warm mapping at %d: %w", at+i*int(pageSize), err)
			}
			i = j
		}
	}
	return nil
}
