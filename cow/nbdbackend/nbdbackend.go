// Package nbdbackend connects cow overlays to package server: Backend
// serves an overlay as a server.Backend, and Base turns a read-only
// server.Backend (such as *server.FileBackend) into an overlay's base.
// It only converts the Extent type; package cow itself does not depend on
// package server, so that server may import cow.
package nbdbackend

import (
	"errors"
	"sync"

	"github.com/nbdboot/nbdboot/cow"
	"github.com/nbdboot/nbdboot/server"
)

// Backend is one connection's view of a shared overlay.
type Backend struct {
	*cow.Overlay
	once    sync.Once
	release func()
}

var _ server.Backend = (*Backend)(nil)

// New serves o. Close runs release (once, if not nil) instead of closing
// the overlay, which the cow.Manager owns. With server.Resolver's
// AcquireFrom, which hands the server a release function of its own, pass
// nil here and return the Manager's release from Acquire:
//
//	ov, release, err := m.Acquire(export, client, nbdbackend.Base(base), policy)
//	...
//	return &server.Export{Name: name, Backend: nbdbackend.New(ov, nil)}, release, nil
func New(o *cow.Overlay, release func()) *Backend {
	return &Backend{Overlay: o, release: release}
}

// Extents implements server.Backend.
func (b *Backend) Extents(off, length int64, max int) ([]server.Extent, error) {
	exts, err := b.Overlay.Extents(off, length, max)
	if err != nil {
		return nil, err
	}
	out := make([]server.Extent, len(exts))
	for i, e := range exts {
		out[i] = server.Extent{Length: e.Length, Hole: e.Hole}
	}
	return out, nil
}

// Zero implements server.Backend, mapping cow.ErrNotFast to
// server.ErrNotFast.
func (b *Backend) Zero(off, length int64, noHole, fast bool) error {
	err := b.Overlay.Zero(off, length, noHole, fast)
	if errors.Is(err, cow.ErrNotFast) {
		return server.ErrNotFast
	}
	return err
}

// Close implements server.Backend: it releases this connection's
// reference to the overlay.
func (b *Backend) Close() error {
	b.once.Do(func() {
		if b.release != nil {
			b.release()
		}
	})
	return nil
}

// base adapts a server.Backend to cow.Base and cow.BaseExtents.
type base struct{ server.Backend }

// Base returns be as an overlay base that reports be's holes.
func Base(be server.Backend) cow.Base { return base{be} }

// Extents implements cow.BaseExtents.
func (b base) Extents(off, length int64, max int) ([]cow.Extent, error) {
	exts, err := b.Backend.Extents(off, length, max)
	if err != nil {
		return nil, err
	}
	out := make([]cow.Extent, len(exts))
	for i, e := range exts {
		out[i] = cow.Extent{Length: e.Length, Hole: e.Hole}
	}
	return out, nil
}
