package cow

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// release ends one connection's use of e.
func (m *Manager) release(e *entry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e.refs--
	e.lastUse = time.Now()
	if m.entries[e.key] != e {
		return // reset or closed meanwhile
	}
	m.saveMetaLocked(e)
	if e.refs == 0 && !m.closed {
		m.scheduleLocked(e, e.grace)
	}
}

// scheduleLocked arms e's idle timer: after d, an ephemeral overlay is
// dropped and a persistent one closed.
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
	if m.entries[e.key] != e || e.epoch != epoch || e.refs > 0 {
		return
	}
	e.timer = nil
	if !e.persistent {
		m.log.Info("dropping idle ephemeral overlay", "export", e.export, "client", e.client)
		m.dropLocked(e)
		return
	}
	m.closeLocked(e)
}

// closeLocked closes e's overlay, keeping its files.
func (m *Manager) closeLocked(e *entry) error {
	if e.ov == nil {
		return nil
	}
	e.allocated = e.ov.Allocated()
	err := e.ov.Close()
	e.ov = nil
	if err != nil {
		err = fmt.Errorf("close overlay of client %q on export %q: %w", e.client, e.export, err)
		m.log.Error("close overlay", "export", e.export, "client", e.client, "err", err)
	}
	m.saveMetaLocked(e)
	return err
}

// dropLocked forgets e and deletes its files: renamed into the trash
// first, so that a crash midway leaves no half overlay.
func (m *Manager) dropLocked(e *entry) {
	e.epoch++
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
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
