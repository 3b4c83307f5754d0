package server

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/nbdboot/nbdboot/cow"
	"github.com/nbdboot/nbdboot/internal/ratelog"
	"github.com/nbdboot/nbdboot/protocol"
)

// Caps on a copy-on-write export's overlays, so that one client cannot
// fill the server by inventing client IDs: how many the export keeps, how
// many one address uses at once, and how fast new ones are made. All are
// checked at the handshake (ERR_POLICY, which the client sees), and the
// first two again by the Manager when the overlay is made.

// Defaults for an export that sets no caps.
const (
	DefaultMaxOverlays           = 1000
	DefaultMaxOverlaysPerAddress = 4
	DefaultNewOverlaysPerMinute  = 60
)

// overlayCaps is an export's caps, defaults applied.
type overlayCaps struct {
	max, perAddr, perMinute int
	gate                    *ratelog.Gate // shared by the export's successive versions
}

func capsOf(ec ExportConfig) overlayCaps {
	c := overlayCaps{max: cmp.Or(ec.MaxOverlays, DefaultMaxOverlays),
		perAddr:   cmp.Or(ec.MaxOverlaysPerAddress, DefaultMaxOverlaysPerAddress),
		perMinute: cmp.Or(ec.NewOverlaysPerMinute, DefaultNewOverlaysPerMinute)}
	c.gate = ratelog.NewGate(c.perMinute, time.Now)
	return c
}

// same reports whether c and o are the same settings.
func (c overlayCaps) same(o overlayCaps) bool {
	return c.max == o.max && c.perAddr == o.perAddr && c.perMinute == o.perMinute
}

// checkCaps refuses the client at a an overlay (export e, client ID
// client) past e's caps; the caller holds t.mu.
func (t *Exports) checkCaps(name string, e *Export, client string, a netip.Addr) error {
	if e.caps.gate == nil { // built without a config (tests): no caps
		return nil
	}
	key := e.Name + "/" + client
	if u := t.users[key]; u == nil && t.usedBy[a] >= e.caps.perAddr {
		return fmt.Errorf("export %q: %s uses %d overlays already (max_overlays_per_address): %w", name, a, t.usedBy[a], protocol.ErrPolicy)
	}
	if t.overlays == nil {
		return nil
	}
	p := cow.Policy{Persistent: e.cow == COWPersistent, BaseID: e.baseID}
	e.policyCaps(&p)
	if err := t.overlays.Check(e.Name, client, p); err != nil {
		if errors.Is(err, cow.ErrTooMany) {
			return fmt.Errorf("export %q: max_overlays: %w: %w", name, err, protocol.ErrPolicy)
		}
		return fmt.Errorf("export %q: %w", name, err)
	}
	if t.users[key] == nil && !t.overlays.Has(e.Name, client) && !e.caps.gate.Ready() {
		return fmt.Errorf("export %q: new overlays are made too fast (new_overlays_per_minute): %w", name, protocol.ErrPolicy)
	}
	return nil
}

// policyCaps sets the Manager's side of e's caps in p.
func (e *Export) policyCaps(p *cow.Policy) {
	if e.caps.gate == nil {
		return
	}
	p.MaxOverlays, p.AllowNew = e.caps.max, e.caps.gate.Allow
}
