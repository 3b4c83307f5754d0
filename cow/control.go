package cow

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// List describes every overlay, open or not, sorted by export and client.
func (m *Manager) List() []Info {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	out := make([]Info, 0, len(m.entries))
	for _, e := range m.entries {
		in := Info{Export: e.export, Client: e.client, Size: e.allocated, LastUse: e.lastUse,
			Connections: e.refs, Persistent: e.persistent}
		if e.ov != nil {
			in.Size = e.ov.Allocated()
		}
		if e.refs > 0 {
			in.LastUse = now
		}
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b Info) int {
		return cmp.Or(cmp.Compare(a.Export, b.Export), cmp.Compare(a.Client, b.Client))
	})
	return out
}

// Reset deletes the overlay of client on export, so that its next
// connection starts from the base again. It refuses (ErrBusy) while the
// client is connected: deleting the disk under a running system would
// corrupt it, and deferring to the next disconnect would do the same to
// a client that merely reconnects after a network outage. Disconnected
// overlays still inside their grace period are reset at once.
func (m *Manager) Reset(export, client string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[key{export, client}]
	if e == nil {
		return fmt.Errorf("reset overlay of client %q on export %q: %w", client, export, ErrNoOverlay)
	}
	if e.refs > 0 || e.opening != nil {
		return fmt.Errorf("reset overlay of client %q on export %q: %w by %d connections", client, export, ErrBusy, max(e.refs, 1))
	}
	m.dropLocked(e)
	return nil
}

// ResetAll resets every overlay of export that no client is connected
// to. It returns how many it deleted, and an error wrapping ErrBusy
// naming those it left.
func (m *Manager) ResetAll(export string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var (
		n    int
		busy []string
	)
	for _, e := range m.entries {
		if e.export != export {
			continue
		}
		if e.refs > 0 || e.opening != nil {
			busy = append(busy, e.client)
			continue
		}
		m.dropLocked(e)
		n++
	}
	if len(busy) > 0 {
		slices.Sort(busy)
		return n, fmt.Errorf("reset overlays of export %q: %w: clients %q still connected", export, ErrBusy, busy)
	}
	return n, nil
}
