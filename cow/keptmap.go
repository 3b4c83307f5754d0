package cow

import (
	"slices"
	"syscall"

	"github.com/nbdboot/nbdboot/internal/nowait"
)

// An overlay's data file mapping outlives the overlay's linger. Lent
// READs send Data blocks from the mapping, and a page is sent without a
// fault only once the mapping's page tables hold it: a mapping made
// afresh at every reopen pays a fault (and a page-cache lookup in every
// residency check) for each page it sends again, a third more server CPU
// on a client's first pass over what it wrote, while the base's mapping,
// the export's for as long as it is served, has them all along. So when
// an idle overlay is closed at the end of its linger, its files are
// closed (no file descriptor stays with an idle overlay) but the mapping
// is kept with its entry, and the next open of the same data file (the
// same inode: a kept mapping pins it) takes it over. At most MaxIdleOpen
// mappings are kept, the oldest given up first; dropping or resetting an
// overlay gives its mapping up before its files are deleted, and the
// Manager's Close gives up all of them.

// keptMap is a data file's mapping kept while its overlay is closed.
type keptMap struct {
	m        []byte
	dev, ino uint64 // the data file's identity
}

// release unmaps k (nil does nothing).
func (k *keptMap) release() {
	if k != nil {
		nowait.Unmap(k.m)
	}
}

// fileID is the identity of the file st describes, (0, 0) if unknown.
func fileID(st interface{ Sys() any }) (dev, ino uint64) {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(s.Dev), s.Ino
	}
	return 0, 0
}

// adoptMapping maps the data file (fd, of size bytes, identity dev and
// ino) for lending: k's mapping if it is of the same file and size, else
// a new one (k is released). nil if it cannot be mapped.
func adoptMapping(k *keptMap, fd int, size int64, dev, ino uint64) []byte {
	if k != nil && ino != 0 && k.dev == dev && k.ino == ino && int64(len(k.m)) == size {
		return k.m
	}
	k.release()
	return nowait.Map(fd, size)
}

// keepLocked keeps k, the mapping of e's overlay just closed; the caller
// holds m.mu.
func (m *Manager) keepLocked(e *entry, k *keptMap) {
	if k == nil {
		return
	}
	if m.closed || m.entries[e.key] != e || e.ov != nil || e.kept != nil {
		k.release() // dropped, reopened or the Manager closed meanwhile
		return
	}
	e.kept = k
	m.kept = append(m.kept, e)
	for len(m.kept) > m.maxIdleOpen {
		m.giveUpLocked(m.kept[0])
	}
}

// takeKeptLocked takes e's kept mapping (nil if none) for its reopening.
func (m *Manager) takeKeptLocked(e *entry) *keptMap {
	k := e.kept
	m.forgetKeptLocked(e)
	return k
}

// giveUpLocked unmaps e's kept mapping, if any.
func (m *Manager) giveUpLocked(e *entry) {
	e.kept.release()
	m.forgetKeptLocked(e)
}

func (m *Manager) forgetKeptLocked(e *entry) {
	e.kept = nil
	if i := slices.Index(m.kept, e); i >= 0 {
		m.kept = slices.Delete(m.kept, i, i+1)
	}
}
