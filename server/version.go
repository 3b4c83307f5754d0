package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/nbdboot/nbdboot/protocol"
)

// Image versions. An administrator updates a lab image by renaming a new
// file over the served path and reloading (or restarting) the server.
// Machines already running must never be switched to the new file under
// their mounted root, even of the same size: their page cache and
// filesystem describe the old one.
//
// Each file-backed export has a version: a short hash of the file's
// identity (device and inode; for a read-only export also its size and
// modification time, which nothing but a replacement changes). The
// handshake names the export NAME@VERSION in NBD_INFO_NAME
// (protocol.ExportInfo.Canonical), and nbdboot reconnects with that name.
// NAME@VERSION resolves to that version only:
//   - the current file, when it still is that version (also after a
//     restart of the server, since the identity is the file's);
//   - a replaced file the server still holds open: a reload keeps a
//     replaced export's file open while connections use it and for
//     versionGrace after the last one ended, so a reconnect finds it;
//   - otherwise nothing: the handshake fails with a message saying the
//     image was replaced, and the client waits (its I/O queued) instead of
//     reading different bytes. Rebooting it boots the new version.
// Plain NAME always resolves to the current file: new boots get the new
// version. A per-client overlay (NAME/CLIENT@VERSION) keeps its base
// version the same way; its overlay policy (cow.Policy.BaseID) refuses
// to serve an overlay over another base.

// DefaultVersionGrace is how long a replaced image stays open for
// reconnects after its last connection ended.
const DefaultVersionGrace = 10 * time.Minute

// versionLen is the length of a version: hex digits of a SHA-256.
const versionLen = 12

// version is the version of the image id identifies: a hash of its
// device and inode, and for a read-only regular file also its size and
// modification time (a writable export's clients change those); "" for a
// backend that is not a file.
func (id ImageID) version(readOnly bool) string {
	if id.IsZero() {
		return ""
	}
	s := fmt.Sprintf("dev=%d ino=%d", id.Dev, id.Ino)
	// A block device's node has size 0 and a modification time that says
	// nothing of its content: its identity alone (as ImageID.sameFile).
	if readOnly && id.Size > 0 {
		s += fmt.Sprintf(" size=%d mtime=%d", id.Size, id.MTime)
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:versionLen]
}

// splitVersion splits NAME@VERSION; ok is false when name carries no
// well-formed version.
func splitVersion(name string) (base, version string, ok bool) {
	i := strings.LastIndexByte(name, '@')
	if i < 0 || len(name)-i-1 != versionLen {
		return name, "", false
	}
	for _, c := range name[i+1:] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return name, "", false
		}
	}
	return name[:i], name[i+1:], true
}

// canonical is the name to reconnect with: name (without a version) at
// e's version.
func canonical(name string, e *Export) string {
	if e.version == "" {
		return ""
	}
	base, _, _ := splitVersion(name)
	if base == "" { // the only export, asked for by the empty name
		base = e.Name
	}
	return base + "@" + e.version
}

// heldKey keys a replaced export kept open for its version.
func heldKey(name, version string) string { return name + "@" + version }

// resolveVersion resolves NAME@VERSION (base is NAME, possibly
// NAME/CLIENT); the caller holds t.mu.
func (t *Exports) resolveVersion(full, base, version string) (resolved, error) {
	r, err := t.resolveCurrent(base)
	if err != nil {
		return r, err
	}
	if r.e.version == version {
		r.pinned = true
		return r, nil
	}
	if h, ok := t.held[heldKey(r.e.Name, version)]; ok {
		return resolved{e: h, client: r.client, pinned: true}, nil
	}
	return resolved{}, fmt.Errorf("export %q: image version %s is no longer served: %q was replaced (now version %s); reboot the machine to boot the new version: %w",
		full, version, r.e.Name, r.e.version, protocol.ErrUnknownExport)
}

// isHeld reports whether retired export e is held open for its version;
// the caller holds t.mu.
func (t *Exports) isHeld(e *Export) bool {
	h, ok := t.held[heldKey(e.Name, e.version)]
	return ok && e.version != "" && h.own == e.own
}

// hold keeps export e, replaced by another of its name, open for
// reconnects to its version; the caller holds t.mu, and t.byName is the
// new table. It reports whether e is held (else close it at
// refs 0 as before).
func (t *Exports) hold(e *Export) bool {
	if _, replaced := t.byName[e.Name]; !replaced || e.version == "" || t.versionGrace <= 0 {
		return false // removed exports are not reached by NAME@VERSION
	}
	if t.held == nil {
		t.held = map[string]*Export{}
	}
	t.held[heldKey(e.Name, e.version)] = e
	if e.own.refs == 0 {
		t.expireLater(e)
	}
	return true
}

// expireLater closes held export e once versionGrace has passed without
// a connection; the caller holds t.mu.
func (t *Exports) expireLater(e *Export) {
	if e.own.expiry != nil {
		e.own.expiry.Stop()
	}
	e.own.expiry = time.AfterFunc(t.versionGrace, func() {
		t.mu.Lock()
		if e.own.refs > 0 || !t.isHeld(e) {
			t.mu.Unlock()
			return
		}
		delete(t.held, heldKey(e.Name, e.version))
		e.own.expiry = nil
		t.mu.Unlock()
		e.Backend.Close()
		t.log.Info("closed a replaced image version", "export", e.Name, "version", e.version)
	})
}

// WithVersionGrace sets how long a replaced image stays open for
// reconnects after its last connection (default DefaultVersionGrace; 0
// closes it with its last connection).
func WithVersionGrace(d time.Duration) ExportsOption {
	return func(t *Exports) { t.versionGrace = d }
}
