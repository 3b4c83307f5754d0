package cow

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// An overlay's life after its client's last connection: it lingers open
// for Config.Linger (a reconnect finds it open), or is closed at once when
// MaxIdleOpen overlays linger already (the one idle longest is closed to
// make room). Closing syncs the overlay, closes its files and writes its
// meta data, without the Manager's lock: the entry is marked opening
// meanwhile, so that an Acquire waits for it and Reset refuses it. A
// closed ephemeral overlay is dropped at the end of its grace period; a
// closed persistent one stays on disk, holding no file descriptor.

// release ends one connection's use of e.
func (m *Manager) release(e *entry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e.refs--
	e.lastUse = time.Now()
	if m.entries[e.key] != e || m.closed || e.refs > 0 {
		return // reset or closed meanwhile, or still in use
	}
	if m.linger > 0 && m.maxIdleOpen > 0 && e.ov != nil {
		m.idle = append(m.idle, e)
		m.scheduleLocked(e, min(m.linger, e.grace))
		for len(m.idle) > m.maxIdleOpen {
			m.closeIdleLocked(m.idle[0])
		}
		return
	}
	m.closeIdleLocked(e)
}

// closeIdleLocked closes e's overlay, unused, and arms its drop timer if
// it is ephemeral. The caller holds m.mu, which is released meanwhile.
func (m *Manager) closeIdleLocked(e *entry) {
	m.unidleLocked(e)
	e.epoch++ // disarm the linger timer
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	m.closeUnlocked(e)
	if m.entries[e.key] != e || m.closed || e.refs > 0 || e.ov != nil || e.opening != nil {
		return // taken up again meanwhile
	}
	if !e.persistent {
		m.scheduleLocked(e, e.grace-time.Since(e.lastUse))
	}
}

// unidleLocked takes e off the list of lingering overlays.
func (m *Manager) unidleLocked(e *entry) {
	if i := slices.Index(m.idle, e); i >= 0 {
		m.idle = slices.Delete(m.idle, i, i+1)
	}
}

// scheduleLocked arms e's idle timer: after d, an open overlay is closed
// (its linger is over), a closed ephemeral one dropped.
func (m *Manager) scheduleLocked(e *entry, d time.Duration) {
	e.epoch++
	epoch := e.epoch
	if e.timer != nil {
		e.timer.Stop()
	}
	e.timer = time.AfterFunc(d, func() { m.expire(e, epoch) })
}

func (m *Manager) expire(e *entry, epoch uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.entries[e.key] != e || e.epoch != epoch || e.refs > 0 || e.opening != nil || m.closed {
		return
	}
	e.timer = nil
	if e.ov != nil {
		m.closeIdleLocked(e)
		return
	}
	if !e.persistent {
		m.log.Info("dropping idle ephemeral overlay", "export", e.export, "client", e.client)
		m.dropLocked(e)
	}
}

// closeUnlocked closes e's overlay and writes its meta data with m.mu
// released (the caller holds it); e is marked opening meanwhile.
func (m *Manager) closeUnlocked(e *entry) {
	if e.ov == nil {
		return
	}
	ov := e.ov
	e.allocated = ov.Allocated()
	e.ov = nil
	md := e.meta()
	ch := make(chan struct{})
	e.opening = ch
	m.mu.Unlock()
	k, err := closeOverlay(e, ov, md, true)
	m.mu.Lock()
	e.opening = nil
	close(ch)
	e.closedCleanly = err == nil
	if err != nil {
		m.log.Error("close overlay", "export", e.export, "client", e.client, "err", err)
	}
	m.keepLocked(e, k)
}

// closeLocked closes e's overlay, keeping its files, under m.mu (when the
// Manager closes).
func (m *Manager) closeLocked(e *entry) error {
	if e.ov == nil {
		return nil
	}
	ov := e.ov
	e.allocated = ov.Allocated()
	e.ov = nil
	_, err := closeOverlay(e, ov, e.meta(), false)
	if err != nil {
		m.log.Error("close overlay", "export", e.export, "client", e.client, "err", err)
	}
	return err
}

// closeOverlay syncs and closes ov, then records md (last use, size) in
// its meta data. With keep, it returns the data file's mapping instead of
// unmapping it (keptmap.go).
func closeOverlay(e *entry, ov *Overlay, md meta, keep bool) (*keptMap, error) {
	k, err := ov.close(keep)
	if err != nil {
		err = fmt.Errorf("close overlay of client %q on export %q: %w", e.client, e.export, err)
	}
	if merr := writeMeta(ov.fs, e.dir, md); merr != nil && err == nil {
		err = fmt.Errorf("overlay of client %q on export %q: meta data: %w", e.client, e.export, merr)
	}
	return k, err
}

// dropLocked forgets e and deletes its files: renamed into the trash
// first, so that a crash midway leaves no half overlay.
func (m *Manager) dropLocked(e *entry) {
	e.epoch++
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	m.unidleLocked(e)
	m.giveUpLocked(e) // before its files are deleted
	if e.ov != nil {
		e.ov.abandon() // its data is about to go
		e.ov = nil
	}
	delete(m.entries, e.key)
	trash := filepath.Join(m.dir, trashName)
	m.trashN++
	victim := filepath.Join(trash, fmt.Sprintf("%d-%d", time.Now().UnixNano(), m.trashN))
	err := os.MkdirAll(trash, 0o700)
	if err == nil {
		err = os.Rename(e.dir, victim)
	}
	if err == nil {
		err = os.RemoveAll(victim)
	}
	if err != nil {
		m.log.Error("delete overlay", "export", e.export, "client", e.client, "dir", e.dir, "err", err)
	}
}

// waitOpeningLocked waits until no overlay is being opened or closed
// without the lock; the caller holds m.mu.
func (m *Manager) waitOpeningLocked() {
	for {
		var ch chan struct{}
		for _, e := range m.entries {
			if e.opening != nil {
				ch = e.opening
				break
			}
		}
		if ch == nil {
			return
		}
		m.mu.Unlock()
		<-ch
		m.mu.Lock()
	}
}
