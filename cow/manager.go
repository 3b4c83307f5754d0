package cow

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nbdboot/nbdboot/internal/disk"
)

// DefaultGrace is how long an ephemeral overlay outlives its client's
// last connection unless Config or Policy say otherwise.
const DefaultGrace = 60 * time.Second

// Defaults for how long an overlay stays open once its client's last
// connection has gone, and how many may be open so.
const (
	DefaultLinger      = 5 * time.Second
	DefaultMaxIdleOpen = 32
)

// ErrBusy is wrapped by Reset and ResetAll for overlays a client is
// connected to.
var ErrBusy = errors.New("overlay in use")

// ErrBaseChanged is wrapped by Acquire when a persistent overlay was made
// over another base than the one given (Policy.BaseID).
var ErrBaseChanged = errors.New("overlay was made over another base")

// ErrTooMany refuses a new overlay past an export's cap or creation rate
// (Policy.MaxOverlays, Policy.AllowNew).
var ErrTooMany = errors.New("too many overlays")

// ErrNoOverlay is wrapped by Reset for a client that has no overlay.
var ErrNoOverlay = errors.New("no such overlay")

// trashName is the directory, inside the state directory, that overlay
// directories are renamed into before they are deleted, so that a crash
// midway never leaves half an overlay. No escaped export name starts
// with '.'.
const trashName = ".trash"

// Config configures a Manager.
type Config struct {
	// Dir is the state directory: Dir/EXPORT/CLIENT/ per overlay.
	Dir string
	// Grace is how long an ephemeral overlay is kept after its client's
	// last connection ends; zero means DefaultGrace.
	Grace time.Duration
	// Log receives drops and errors nobody else sees; nil discards.
	Log *slog.Logger
	// FS is the file system seam overlays and their meta data are
	// written through (Options.FS); nil means the real one. Tests
	// inject a power-loss model.
	FS disk.FS
	// Linger is how long an overlay stays open after its client's last
	// connection ended, so that a reconnect finds it open; then it is
	// synced and closed, holding no file descriptor. Zero means
	// DefaultLinger, negative closes at once.
	Linger time.Duration
	// MaxIdleOpen caps the overlays open without a connection (lingering):
	// past it the one idle longest is closed at once. Zero means
	// DefaultMaxIdleOpen.
	MaxIdleOpen int
}

// Policy is how an export's overlays live.
type Policy struct {
	// Persistent overlays are kept across disconnects, client reboots
	// and server restarts until reset. Others (ephemeral) are dropped
	// once their client has had no connection for the grace period.
	Persistent bool
	// Grace overrides Config.Grace for this export when non-zero.
	Grace time.Duration
	// BaseID identifies the base's content, for instance its path, size
	// and modification time, or a content hash. An overlay made over a
	// base with another ID is never served over this one: an ephemeral
	// one is dropped and made anew, a persistent one refused with
	// ErrBaseChanged until reset. Empty skips the check.
	BaseID string
	// MaxOverlays caps the overlays the export has (on disk, open or
	// not); a new one past it is refused with ErrTooMany. 0: no cap.
	MaxOverlays int
	// AllowNew, if set, is asked before a new overlay is made (a rate
	// limit); false refuses it with ErrTooMany.
	AllowNew func() bool
	// Options apply when an overlay is opened (the first connection
	// after the server started or after the overlay was closed).
	Options
}

// Info describes one overlay for the control interface.
type Info struct {
	Export string
	Client string
	// Size is the bytes the overlay holds (its Data blocks).
	Size        int64
	LastUse     time.Time
	Connections int
	Persistent  bool
}

// Manager owns the overlays of one or more exports, one per export and
// client, shared by all of a client's connections. It is safe for
// concurrent use.
type Manager struct {
	dir         string
	grace       time.Duration
	linger      time.Duration
	maxIdleOpen int
	log         *slog.Logger
	fs          disk.FS

	mu      sync.Mutex
	entries map[key]*entry
	idle    []*entry // open without a connection, longest idle first
	kept    []*entry // closed, keeping their data file's mapping, oldest first (keptmap.go)
	trashN  int
	closed  bool
}

type key struct{ export, client string }

// entry is one overlay known to the Manager, open or not.
type entry struct {
	key
	dir        string
	ov         *Overlay // nil unless open
	refs       int      // connections
	persistent bool
	grace      time.Duration
	lastUse    time.Time
	allocated  int64 // while closed
	baseID     string
	timer      *time.Timer
	epoch      uint64 // bumped to disarm a pending timer
	// opening is set while ov is being opened or closed without the
	// Manager's lock, and closed when that is done.
	opening chan struct{}
	// kept is the data file's mapping, kept while the overlay is
	// closed (keptmap.go); nil when open or none.
	kept *keptMap
	// closedCleanly: this Manager closed the overlay and its Close
	// succeeded (see Options.closedCleanly); cleared when it is opened.
	closedCleanly bool
}

// NewManager opens the state directory. Ephemeral overlays left from
// before whose last use is older than their grace period are dropped now;
// the others get the rest of their grace period to be reacquired.
func NewManager(cfg Config) (*Manager, error) {
	if cfg.Dir == "" {
		return nil, errors.New("overlay manager: state directory is empty")
	}
	m := &Manager{dir: cfg.Dir, grace: cfg.Grace, log: cfg.Log, fs: cfg.FS, entries: map[key]*entry{},
		linger: cmp.Or(cfg.Linger, DefaultLinger), maxIdleOpen: cmp.Or(cfg.MaxIdleOpen, DefaultMaxIdleOpen)}
	if m.fs == nil {
		m.fs = disk.OS{}
	}
	if m.grace <= 0 {
		m.grace = DefaultGrace
	}
	if m.log == nil {
		m.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return nil, fmt.Errorf("overlay manager: %w", err)
	}
	if err := os.RemoveAll(filepath.Join(m.dir, trashName)); err != nil {
		return nil, fmt.Errorf("overlay manager: empty trash: %w", err)
	}
	if err := m.scan(); err != nil {
		return nil, fmt.Errorf("overlay manager: scan %s: %w", m.dir, err)
	}
	return m, nil
}

// scan registers the overlays found on disk.
func (m *Manager) scan() error {
	exports, err := os.ReadDir(m.dir)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	for _, ed := range exports {
		if !ed.IsDir() || strings.HasPrefix(ed.Name(), ".") {
			continue
		}
		clients, err := os.ReadDir(filepath.Join(m.dir, ed.Name()))
		if err != nil {
			return err
		}
		for _, cd := range clients {
			dir := filepath.Join(m.dir, ed.Name(), cd.Name())
			if !cd.IsDir() {
				continue
			}
			md, err := readMeta(dir)
			if err != nil {
				m.log.Warn("overlay without readable meta data: left alone", "dir", dir, "err", err)
				continue
			}
			e := &entry{key: key{md.Export, md.Client}, dir: dir, persistent: md.Persistent,
				grace: md.Grace, lastUse: md.LastUse, allocated: md.Allocated, baseID: md.BaseID}
			if e.grace <= 0 {
				e.grace = m.grace
			}
			m.entries[e.key] = e
			if e.persistent {
				continue
			}
			if idle := now.Sub(e.lastUse); idle >= e.grace {
				m.log.Info("dropping ephemeral overlay idle since before start", "export", e.export, "client", e.client, "idle", idle)
				m.dropLocked(e)
			} else {
				m.scheduleLocked(e, e.grace-idle)
			}
		}
	}
	return nil
}

// Acquire returns the overlay of client on export over base, opening or
// creating it, and the function to call once when the connection using it
// ends. All connections of a client share the overlay; it must not be
// closed by them. p applies when the overlay is opened; Persistent and
// Grace also when it already is.
func (m *Manager) Acquire(export, client string, base Base, p Policy) (*Overlay, func(), error) {
	ek, err := fileName("export", export, MaxExportLen)
	if err != nil {
		return nil, nil, err
	}
	ck, err := fileName("client", client, MaxClientLen)
	if err != nil {
		return nil, nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := key{export, client}
	e := m.entries[k]
	for e != nil && e.opening != nil { // another connection of the client is opening it
		ch := e.opening
		m.mu.Unlock()
		<-ch
		m.mu.Lock()
		e = m.entries[k]
	}
	if m.closed {
		return nil, nil, fmt.Errorf("acquire overlay of client %q on export %q: manager closed", client, export)
	}
	if e != nil && p.BaseID != "" && e.baseID != p.BaseID {
		if err := baseConflict(e, p); err != nil {
			return nil, nil, err
		}
		m.log.Info("dropping ephemeral overlay made over another base", "export", export, "client", client,
			"old_base", e.baseID, "base", p.BaseID)
		m.dropLocked(e)
		e = nil
	}
	isNew := e == nil
	if isNew {
		if err := m.mayCreateLocked(export, p); err != nil {
			return nil, nil, fmt.Errorf("acquire overlay of client %q on export %q: %w", client, export, err)
		}
		e = &entry{key: k, dir: filepath.Join(m.dir, ek, ck), baseID: p.BaseID}
	}
	e.persistent, e.grace = p.Persistent, cmp.Or(p.Grace, m.grace)
	if e.ov == nil {
		if err := m.openEntry(e, base, p.Options, isNew); err != nil {
			return nil, nil, fmt.Errorf("acquire overlay of client %q on export %q: %w", client, export, err)
		}
	} else if e.ov.Size() != base.Size() {
		return nil, nil, fmt.Errorf("acquire overlay of client %q on export %q: it is open over a %d-byte base, this one has %d bytes",
			client, export, e.ov.Size(), base.Size())
	}
	e.epoch++ // disarm the linger or drop timer
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	m.unidleLocked(e)
	e.refs++
	// No meta data is written here: last use and size reach meta.json
	// when the overlay is closed (a new one's was written at creation),
	// so a storm of connecting clients does no fsync under the lock.
	e.lastUse = time.Now()
	var once sync.Once
	return e.ov, func() { once.Do(func() { m.release(e) }) }, nil
}

// baseConflict is why e, made over another base than p's, cannot be
// served now: in use over the other base, or persistent; nil when it is
// ephemeral and unused (Acquire drops it and makes it anew).
func baseConflict(e *entry, p Policy) error {
	switch {
	case e.refs > 0:
		return fmt.Errorf("acquire overlay of client %q on export %q over base %q: %w by connections over base %q",
			e.client, e.export, p.BaseID, ErrBusy, e.baseID)
	case e.persistent:
		return fmt.Errorf("acquire overlay of client %q on export %q: %w %q, not %q (reset it)",
			e.client, e.export, ErrBaseChanged, e.baseID, p.BaseID)
	}
	return nil
}

// Check reports, changing nothing, why Acquire would refuse client's
// overlay on export under p now (a base conflict, the export's cap), so
// that a server can refuse the client during the handshake. Failures of
// the file work itself are found only by Acquire (which nbdserve runs
// while answering GO, so they too reach the client as an NBD error).
func (m *Manager) Check(export, client string, p Policy) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[key{export, client}]
	switch {
	case e != nil && p.BaseID != "" && e.baseID != p.BaseID:
		return baseConflict(e, p)
	case e == nil && p.MaxOverlays > 0:
		if n := m.countLocked(export); n >= p.MaxOverlays {
			return fmt.Errorf("overlay of client %q on export %q: %w: export has %d, the most allowed", client, export, ErrTooMany, n)
		}
	}
	return nil
}

// mayCreateLocked checks p's cap and rate for a new overlay of export;
// the caller holds m.mu.
func (m *Manager) mayCreateLocked(export string, p Policy) error {
	if p.MaxOverlays > 0 {
		if n := m.countLocked(export); n >= p.MaxOverlays {
			return fmt.Errorf("%w: export has %d, the most allowed", ErrTooMany, n)
		}
	}
	if p.AllowNew != nil && !p.AllowNew() {
		return fmt.Errorf("%w: new overlays are made too fast", ErrTooMany)
	}
	return nil
}

// Has reports whether client has an overlay on export (open or not).
func (m *Manager) Has(export, client string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.entries[key{export, client}]
	return ok
}

// Count returns how many overlays export has.
func (m *Manager) Count(export string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.countLocked(export)
}

func (m *Manager) countLocked(export string) int {
	n := 0
	for k := range m.entries {
		if k.export == export {
			n++
		}
	}
	return n
}

// openEntry opens e's overlay. The caller holds m.mu; it is released
// during the file work, so that clients booting at once open their
// overlays in parallel. Meanwhile e is in the table with e.opening set:
// other Acquires of e wait for it, Reset refuses it (ErrBusy) and its
// timer is disarmed.
func (m *Manager) openEntry(e *entry, base Base, opt Options, isNew bool) error {
	ch := make(chan struct{})
	e.opening = ch
	if isNew {
		m.entries[e.key] = e
	}
	e.epoch++
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	e.lastUse = time.Now()
	md := e.meta()
	opt.kept = m.takeKeptLocked(e) // Open adopts or releases it
	opt.closedCleanly, e.closedCleanly = e.closedCleanly, false
	m.mu.Unlock()
	opt.FS = m.fs
	ov, err := openOverlayDir(m.fs, e.dir, md, base, opt, isNew)
	m.mu.Lock()
	e.opening = nil
	close(ch)
	if err == nil && m.closed {
		ov.Close()
		err = errors.New("manager closed")
	}
	if err != nil {
		if isNew && m.entries[e.key] == e {
			delete(m.entries, e.key)
		} else if !m.closed && e.refs == 0 {
			m.scheduleLocked(e, e.grace)
		}
		return err
	}
	e.ov = ov
	return nil
}

// openOverlayDir opens the overlay in dir, writing its meta data md
// first when it is new, so that a directory with overlay files always
// has one. A directory it created is removed again if the overlay cannot
// be opened; an existing one (an overlay whose meta data was unreadable,
// say) is never.
func openOverlayDir(fs disk.FS, dir string, md meta, base Base, opt Options, isNew bool) (*Overlay, error) {
	_, err := os.Stat(dir)
	created := errors.Is(err, os.ErrNotExist)
	if err := fs.MkdirAll(dir, 0o700); err != nil {
		opt.kept.release()
		return nil, err
	}
	if isNew {
		if err := writeMeta(fs, dir, md); err != nil { // durable at the first Sync with changes
			opt.kept.release()
			return nil, err
		}
	}
	ov, err := Open(dir, base, opt)
	if err != nil {
		if created {
			os.RemoveAll(dir)
		}
		return nil, err
	}
	return ov, nil
}

func (e *entry) meta() meta {
	md := meta{Export: e.export, Client: e.client, Persistent: e.persistent, Grace: e.grace,
		LastUse: e.lastUse, Allocated: e.allocated, BaseID: e.baseID}
	if e.ov != nil {
		md.Allocated = e.ov.Allocated()
	}
	return md
}

// Close syncs and closes every open overlay and stops the timers; the
// overlays stay on disk (an ephemeral one is dropped by the next Manager
// unless its client comes back within the grace period). Connections
// must have ended.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.waitOpeningLocked()
	for len(m.kept) > 0 {
		m.giveUpLocked(m.kept[0])
	}
	var errs []error
	now := time.Now()
	m.idle = nil
	for _, e := range m.entries {
		e.epoch++
		if e.timer != nil {
			e.timer.Stop()
			e.timer = nil
		}
		if e.ov != nil {
			if e.refs > 0 {
				e.lastUse = now
			}
			errs = append(errs, m.closeLocked(e))
		}
	}
	return errors.Join(errs...)
}
