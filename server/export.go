package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nbdboot/nbdboot/cow"
	"github.com/nbdboot/nbdboot/protocol"
)

// Export is one named export and the backend that serves it. Once in a
// table an Export is immutable: an Update that changes its settings
// publishes a new Export (sharing the backend when the file is the same),
// so readers need no lock.
type Export struct {
	Name        string
	Description string
	ReadOnly    bool
	Backend     Backend
	// Image identifies the file served (device, inode, size and
	// modification time when opened); exports of one Update history with
	// equal Images serve the same open file.
	Image ImageID

	path   string // the configured path, to recognise it on Update
	cow    string // COWEphemeral or COWPersistent: serves NAME/CLIENT overlays
	baseID string // identifies the base's content for persistent overlays
	grace  Duration
	quota  Size
	client string // an overlay's client ID (identity for the fence)
	own    *backendRefs
	// version names the image's content (version.go): Image's hash.
	version string
	acc     access      // who may use it (owner.go)
	caps    overlayCaps // cow: caps on its overlays (caps.go)
}

// backendRefs counts the connections of a backend shared by the
// successive Exports an Update publishes for it; guarded by the table's
// lock.
type backendRefs struct {
	refs    int  // connections serving it
	retired bool // no export of the table serves it: close at refs 0
	// expiry closes a replaced version held for reconnects (version.go)
	// once it has gone unused for the grace period.
	expiry *time.Timer
}

// Flags returns the transmission flags the export is offered with
// (SEND_DF is dropped by the handshake when replies are not structured).
func (e *Export) Flags() uint16 {
	f := protocol.FlagHasFlags | protocol.FlagSendFlush | protocol.FlagSendDF |
		protocol.FlagSendCache | protocol.FlagCanMultiConn
	if e.ReadOnly {
		return f | protocol.FlagReadOnly
	}
	return f | protocol.FlagSendFUA | protocol.FlagSendTrim |
		protocol.FlagSendWriteZeroes | protocol.FlagSendFastZero
}

// Info describes the export for the handshake.
func (e *Export) Info() protocol.ExportInfo {
	return protocol.ExportInfo{
		Name:        e.Name,
		Description: e.Description,
		Size:        uint64(e.Backend.Size()),
		Flags:       e.Flags(),
		MinBlock:    1,
		PrefBlock:   4096,
		MaxBlock:    protocol.MaxPayload,
	}
}

// Resolver finds the export a client asked for. Exports is the table,
// copy-on-write overlays included.
type Resolver interface {
	protocol.ExportProvider
	// AcquireFrom returns the export to serve to the client at peer after
	// a finished handshake that negotiated info (as this Resolver's
	// Export answered it), and release, to call once the connection has
	// ended.
	AcquireFrom(info protocol.ExportInfo, peer net.Addr) (e *Export, release func(), err error)
}

// resolved is what a name resolves to, handed to the handshake in
// ExportInfo.Ref and taken back by AcquireFrom: the export, and for
// NAME/CLIENT the overlay's client ID.
type resolved struct {
	e      *Export
	client string // set for NAME/CLIENT
	pinned bool   // asked for as NAME@VERSION: e's version and no other
}

// Exports is a table of exports keyed by name, safe for concurrent use.
// The empty name resolves to the only export when there is exactly one.
// Update replaces the table while connections go on.
type Exports struct {
	update   sync.Mutex   // serialises Update
	overlays *cow.Manager // nil: no copy-on-write exports
	log      *slog.Logger

	mu     sync.RWMutex
	byName map[string]*Export
	order  []*Export
	// held are replaced exports kept open for reconnects to their
	// version (NAME@VERSION), for versionGrace after their last use.
	held         map[string]*Export
	versionGrace time.Duration
	// users: the address each overlay (EXPORT/CLIENT) is in use from.
	users  map[string]*overlayUser
	usedBy map[netip.Addr]int // overlays in use from each address
	leases Leases
}

// NewExports builds a table; names must be valid and unique.
func NewExports(list ...*Export) (*Exports, error) {
	t := &Exports{}
	if err := t.set(list); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Exports) set(list []*Export) error {
	byName := map[string]*Export{}
	for _, e := range list {
		if err := ValidateExportName(e.Name); err != nil {
			return err
		}
		if _, dup := byName[e.Name]; dup {
			return fmt.Errorf("export %q: defined twice", e.Name)
		}
		byName[e.Name] = e
		if e.own == nil {
			e.own = &backendRefs{}
		}
	}
	t.byName, t.order = byName, list
	return nil
}

// ExportsOption tunes OpenExports.
type ExportsOption func(*Exports)

// WithOverlays lets exports with the cow option serve per-client
// overlays kept by m.
func WithOverlays(m *cow.Manager) ExportsOption {
	return func(t *Exports) { t.overlays = m }
}

// WithLog sets the logger for overlay events such as a full quota.
func WithLog(log *slog.Logger) ExportsOption {
	return func(t *Exports) { t.log = log }
}

// OpenExports opens the backend of every configured export. On error the
// ones already opened are closed and the error names the export and path.
func OpenExports(cfgs []ExportConfig, opts ...ExportsOption) (*Exports, error) {
	t := &Exports{byName: map[string]*Export{}, versionGrace: DefaultVersionGrace}
	for _, o := range opts {
		o(t)
	}
	if t.log == nil {
		t.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if _, _, err := t.Update(cfgs); err != nil {
		return nil, err
	}
	return t, nil
}

// Update makes the table match cfgs. An export whose path and read-only
// setting are unchanged keeps its backend (and its connections); others
// are opened. Exports removed or replaced are closed once their last
// connection ends. On error nothing changes.
func (t *Exports) Update(cfgs []ExportConfig) (opened, retired []string, err error) {
	t.update.Lock()
	defer t.update.Unlock()
	t.mu.RLock()
	old := t.byName
	t.mu.RUnlock()

	list := make([]*Export, 0, len(cfgs))
	var fresh []*Export
	closeFresh := func() {
		for _, e := range fresh {
			e.Backend.Close()
		}
	}
	kept := map[*backendRefs]bool{} // backends the new table still serves
	for _, ec := range cfgs {
		if err := ec.Validate(); err != nil {
			closeFresh()
			return nil, nil, err
		}
		if ec.COW != "" && t.overlays == nil {
			closeFresh()
			return nil, nil, fmt.Errorf("export %q: cow needs the state directory, opened at start (restart nbdserve)", ec.Name)
		}
		acc, err := parseAccess(ec)
		if err != nil {
			closeFresh()
			return nil, nil, err
		}
		readOnly := ec.ReadOnly || ec.COW != ""
		if e, ok := old[ec.Name]; ok && e.path == ec.Path && e.ReadOnly == readOnly && e.cow == ec.COW && e.Image.sameFile(ec.Path, readOnly) {
			kept[e.own] = true
			list = append(list, e.with(ec, acc))
			continue
		}
		b, err := OpenFile(ec.Path, readOnly)
		if err != nil {
			closeFresh()
			return nil, nil, fmt.Errorf("export %q: %w", ec.Name, err)
		}
		b.shareAllocation(append(slices.Collect(maps.Values(old)), fresh...))
		e := &Export{Name: ec.Name, Description: ec.Description, ReadOnly: readOnly, Backend: b, Image: b.image(),
			path: ec.Path, cow: ec.COW, grace: ec.Grace, quota: ec.Quota, own: &backendRefs{}, acc: acc, caps: capsOf(ec)}
		e.version = e.Image.version(readOnly)
		if ec.COW != "" {
			e.baseID = baseID(b)
		}
		fresh = append(fresh, e)
		list = append(list, e)
		opened = append(opened, e.Name)
	}

	t.mu.Lock()
	if err := t.set(list); err != nil {
		t.mu.Unlock()
		closeFresh()
		return nil, nil, err
	}
	var toClose []*Export
	for _, e := range old {
		if kept[e.own] {
			continue
		}
		e.own.retired = true
		retired = append(retired, e.Name)
		if !t.hold(e) && e.own.refs == 0 {
			toClose = append(toClose, e)
		}
	}
	t.mu.Unlock()
	for _, e := range toClose {
		e.Backend.Close()
	}
	return opened, retired, nil
}

// with returns e with the settings of ec that an Update may change
// without reopening (description, grace, quota, access): e itself when
// they are unchanged, else a new Export sharing e's backend.
func (e *Export) with(ec ExportConfig, acc access) *Export {
	caps := capsOf(ec)
	sameCaps := e.caps.same(caps)
	if e.Description == ec.Description && e.grace == ec.Grace && e.quota == ec.Quota && e.acc.key == acc.key && sameCaps {
		return e
	}
	n := *e
	n.Description, n.grace, n.quota, n.acc = ec.Description, ec.Grace, ec.Quota, acc
	if !sameCaps {
		n.caps = caps
	}
	return &n
}

// lookup finds name; the caller holds t.mu.
func (t *Exports) lookup(name string) (*Export, error) {
	if e, ok := t.byName[name]; ok {
		return e, nil
	}
	if name == "" && len(t.order) == 1 {
		return t.order[0], nil
	}
	return nil, fmt.Errorf("export %q: %w", name, protocol.ErrUnknownExport)
}

// Resolve returns the export serving name (not NAME/CLIENT overlays).
func (t *Exports) Resolve(name string) (*Export, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.lookup(name)
}

// resolve finds what name serves, NAME/CLIENT and NAME@VERSION
// included; the caller holds t.mu.
func (t *Exports) resolve(name string) (resolved, error) {
	if base, version, ok := splitVersion(name); ok {
		return t.resolveVersion(name, base, version)
	}
	return t.resolveCurrent(name)
}

// resolveCurrent resolves name (NAME or NAME/CLIENT) to the current
// export; the caller holds t.mu.
func (t *Exports) resolveCurrent(name string) (resolved, error) {
	if base, client, ok := strings.Cut(name, "/"); ok {
		e, err := t.cowExport(name, base, client)
		return resolved{e: e, client: client}, err
	}
	e, err := t.lookup(name)
	return resolved{e: e}, err
}

// Acquire is AcquireFrom without a peer address: plain NAME of a
// copy-on-write export then serves the base, read-only.
func (t *Exports) Acquire(name string) (*Export, func(), error) {
	return t.AcquireFrom(protocol.ExportInfo{Name: name}, nil)
}

// AcquireFrom implements Resolver: the export's backend stays open until
// release is called, even if an Update removes the export meanwhile.
// NAME/CLIENT is CLIENT's overlay over copy-on-write export NAME, and
// plain NAME the overlay of peer's IP address. The export the handshake
// resolved (info.Ref) is served unless an Update replaced it since; then
// the name is resolved again.
func (t *Exports) AcquireFrom(info protocol.ExportInfo, peer net.Addr) (*Export, func(), error) {
	name := info.Name
	t.mu.Lock()
	r, ok := info.Ref.(*resolved)
	if !ok || t.byName[r.e.Name] != r.e && !(r.pinned && t.isHeld(r.e)) {
		res, err := t.resolve(name)
		if err != nil {
			t.mu.Unlock()
			return nil, nil, err
		}
		r = &res
	}
	if err := t.checkPeer(name, *r, peer); err != nil {
		t.mu.Unlock()
		return nil, nil, err
	}
	e := r.e
	if fb, ok := e.Backend.(*FileBackend); ok {
		fb.check.recheck() // a changed file fails from this connection's first request
	}
	if e.own.expiry != nil { // a held version in use again
		e.own.expiry.Stop()
		e.own.expiry = nil
	}
	switch {
	case r.client != "":
		return t.acquireOverlay(name, e, r.client, peer)
	case e.cow != "" && peer != nil:
		ip, err := peerIP(peer)
		if err != nil {
			t.mu.Unlock()
			return nil, nil, fmt.Errorf("export %q: %w", name, err)
		}
		return t.acquireOverlay(e.Name, e, ip, peer)
	}
	e.own.refs++
	t.mu.Unlock()
	var once sync.Once
	return e, func() { once.Do(func() { t.release(e) }) }, nil
}

func (t *Exports) release(e *Export) {
	t.mu.Lock()
	e.own.refs--
	closeNow := e.own.retired && e.own.refs == 0
	if closeNow && t.isHeld(e) {
		t.expireLater(e)
		closeNow = false
	}
	t.mu.Unlock()
	if closeNow {
		e.Backend.Close()
	}
}

// Export implements protocol.ExportProvider for a client whose address
// is not known (no access checks): ExportFrom(name, nil).
func (t *Exports) Export(name string) (protocol.ExportInfo, error) {
	return t.ExportFrom(name, nil)
}

// ExportFrom implements PeerResolver: what name gives the client at peer
// (owner.go checks it may); the ExportInfo carries what name resolved to
// (Ref) for AcquireFrom.
func (t *Exports) ExportFrom(name string, peer net.Addr) (protocol.ExportInfo, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	r, err := t.resolve(name)
	if err != nil {
		return protocol.ExportInfo{}, err
	}
	if err := t.checkPeer(name, r, peer); err != nil {
		return protocol.ExportInfo{}, err
	}
	var info protocol.ExportInfo
	switch {
	case r.client != "":
		info = r.e.overlayInfo(name)
	case r.e.cow != "":
		info = r.e.overlayInfo(r.e.Name)
	default:
		info = r.e.Info()
	}
	info.Canonical = canonical(name, r.e)
	info.Ref = &r
	return info, nil
}

// Exports implements protocol.ExportProvider (NBD_OPT_LIST).
func (t *Exports) Exports() []protocol.ExportInfo { return t.ExportsFrom(nil) }

// ExportsFrom implements PeerResolver: the exports whose allow-list
// admits peer (all for a nil peer).
func (t *Exports) ExportsFrom(peer net.Addr) []protocol.ExportInfo {
	t.mu.RLock()
	defer t.mu.RUnlock()
	a, known := peerAddr(peer)
	out := make([]protocol.ExportInfo, 0, len(t.order))
	for _, e := range t.order {
		if known && len(e.acc.allow) > 0 && !within(e.acc.allow, a) {
			continue
		}
		if e.cow != "" {
			out = append(out, e.overlayInfo(e.Name))
			continue
		}
		out = append(out, e.Info())
	}
	return out
}

// Close closes every backend in the table.
func (t *Exports) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for _, e := range t.order {
		e.own.retired = true
		if err := e.Backend.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close export %q: %w", e.Name, err))
		}
	}
	for k, e := range t.held {
		if e.own.expiry != nil {
			e.own.expiry.Stop()
		}
		if err := e.Backend.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close export %q version %s: %w", e.Name, e.version, err))
		}
		delete(t.held, k)
	}
	t.byName, t.order = map[string]*Export{}, nil
	return errors.Join(errs...)
}
