package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nbdboot/nbdboot/cow"
	"github.com/nbdboot/nbdboot/protocol"
)

// Copy-on-write exports: NAME/CLIENT is client CLIENT's overlay over the
// read-only file of export NAME (option cow), kept by a cow.Manager under
// the state directory and shared by all of that client's connections.

// maxClientID bounds the CLIENT part of NAME/CLIENT.
const maxClientID = cow.MaxClientLen

// cowExport finds the copy-on-write export base and checks client; the
// caller holds t.mu.
func (t *Exports) cowExport(name, base, client string) (*Export, error) {
	e, ok := t.byName[base]
	switch {
	case !ok || e.cow == "" || t.overlays == nil:
		return nil, fmt.Errorf("export %q: %q is not a copy-on-write export: %w", name, base, protocol.ErrUnknownExport)
	case client == "" || len(client) > maxClientID:
		return nil, fmt.Errorf("export %q: client ID must be 1 to %d bytes: %w", name, maxClientID, protocol.ErrUnknownExport)
	case client == "." || client == ".." || strings.ContainsAny(client, "/\x00"):
		return nil, fmt.Errorf("export %q: client ID %q: not allowed: %w", name, client, protocol.ErrUnknownExport)
	}
	return e, nil
}

// overlayInfo describes an overlay of copy-on-write export e as name.
func (e *Export) overlayInfo(name string) protocol.ExportInfo {
	return (&Export{Name: name, Description: e.Description, Backend: e.Backend}).Info()
}

// peerIP is the overlay client ID of a plain NAME connection: the peer's
// IP address without port (IPv4-mapped IPv6 addresses as IPv4).
func peerIP(peer net.Addr) (string, error) {
	ap, err := netip.ParseAddrPort(peer.String())
	if err != nil {
		return "", fmt.Errorf("client address %q: %w", peer, err)
	}
	return ap.Addr().Unmap().WithZone("").String(), nil
}

// acquireOverlay opens (or shares) client's overlay named name over
// copy-on-write export e; the caller holds t.mu, which it unlocks.
func (t *Exports) acquireOverlay(name string, e *Export, client string, peer net.Addr) (*Export, func(), error) {
	base := e.Name
	key := base + "/" + client
	e.own.refs++ // the base stays open while the overlay is served
	t.useOverlay(key, peer)
	policy := cow.Policy{Persistent: e.cow == COWPersistent, BaseID: e.baseID,
		Grace: time.Duration(e.grace), Options: cow.Options{Quota: int64(e.quota)}}
	e.policyCaps(&policy)
	t.mu.Unlock()
	ov, releaseOverlay, err := t.overlays.Acquire(base, client, cowBase{e.Backend, abilitiesOf(e.Backend)}, policy)
	if err != nil {
		t.leaveOverlay(key, peer)
		t.release(e)
		return nil, nil, fmt.Errorf("export %q: %w", name, err)
	}
	release := func() {
		releaseOverlay()
		t.leaveOverlay(key, peer)
		t.release(e)
	}
	be := &overlayBackend{Overlay: ov, log: t.log.With("export", base, "client", client), quota: int64(policy.Quota)}
	return &Export{Name: name, Description: e.Description, Backend: be, Image: e.Image, client: key}, release, nil
}

// baseID identifies a base's content by path, size and modification time.
func baseID(b *FileBackend) string {
	id := fmt.Sprintf("%s size=%d", b.f.Name(), b.Size())
	if st, err := os.Stat(b.f.Name()); err == nil {
		id += fmt.Sprintf(" mtime=%d", st.ModTime().UnixNano())
	}
	return id
}

// overlayBackend serves a cow.Overlay as a Backend. Close does nothing:
// the Manager owns the overlay and the release function gives it back.
// A write refused for the quota is logged once, until a write succeeds.
type overlayBackend struct {
	*cow.Overlay
	log    *slog.Logger
	quota  int64
	atFull atomic.Bool
}

func (b *overlayBackend) WriteAt(p []byte, off int64) (int, error) {
	n, err := b.Overlay.WriteAt(p, off)
	b.noteQuota(err)
	return n, err
}

// noteQuota logs the first write refused for the quota.
func (b *overlayBackend) noteQuota(err error) {
	switch {
	case err == nil:
		if b.atFull.Load() {
			b.atFull.Store(false)
		}
	case errors.Is(err, cow.ErrQuota):
		if !b.atFull.Swap(true) {
			b.log.Warn("overlay quota reached: writes get ENOSPC", "quota", b.quota, "allocated", b.Allocated(), "err", err)
		}
	}
}

func (b *overlayBackend) Zero(off, length int64, noHole, fast bool) error {
	err := b.Overlay.Zero(off, length, noHole, fast)
	b.noteQuota(err)
	if errors.Is(err, cow.ErrNotFast) {
		return fmt.Errorf("%w: %w", ErrNotFast, err)
	}
	return err
}

func (b *overlayBackend) Close() error { return nil }

// cowBase lets a Backend be an overlay's base, holes included, and
// lends the overlay its abilities: non-blocking reads, allocation from
// memory and the file's mapping, so that the overlay's reads can stay on
// the read loop and large ones of Base blocks be sent in place.
type cowBase struct {
	Backend
	abl abilities
}

// ReadAtNoWait is the base's non-blocking read, or errWouldBlock.
func (b cowBase) ReadAtNoWait(p []byte, off int64) (int, error) {
	if b.abl.nowait == nil {
		return 0, errWouldBlock
	}
	return b.abl.nowait.ReadAtNoWait(p, off)
}

// Mapped is the base's mapping (MappedReader), nil if it has none.
func (b cowBase) Mapped(off, n int64) []byte {
	if b.abl.mapped == nil {
		return nil
	}
	return b.abl.mapped.Mapped(off, n)
}

// ExtentsNoWait is the base's allocation from memory, if it has one.
func (b cowBase) ExtentsNoWait(dst []protocol.Extent, off, length int64, max int) ([]protocol.Extent, bool) {
	if b.abl.extents == nil {
		return dst, false
	}
	return b.abl.extents.ExtentsNoWait(dst, off, length, max)
}
