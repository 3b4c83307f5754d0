package server

import (
	"errors"
	"fmt"
	"sync"

	"github.com/nbdboot/nbdboot/protocol"
)

// Export is one named export and the backend that serves it.
type Export struct {
	Name        string
	Description string
	ReadOnly    bool
	Backend     Backend
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

// Resolver finds the export a client asked for. Exports is the plain
// table; a copy-on-write resolver can wrap it and key overlays by client.
type Resolver interface {
	protocol.ExportProvider
	// Resolve returns the export to serve for a finished handshake.
	Resolve(name string) (*Export, error)
}

// Exports is a table of exports keyed by name, safe for concurrent use.
// The empty name resolves to the only export when there is exactly one.
type Exports struct {
	mu     sync.RWMutex
	byName map[string]*Export
	order  []*Export
}

// NewExports builds a table; names must be valid and unique.
func NewExports(list ...*Export) (*Exports, error) {
	t := &Exports{byName: map[string]*Export{}}
	for _, e := range list {
		if err := ValidateExportName(e.Name); err != nil {
			return nil, err
		}
		if _, dup := t.byName[e.Name]; dup {
			return nil, fmt.Errorf("export %q: defined twice", e.Name)
		}
		t.byName[e.Name] = e
		t.order = append(t.order, e)
	}
	return t, nil
}

// OpenExports opens the backend of every configured export. On error the
// ones already opened are closed and the error names the export and path.
func OpenExports(cfgs []ExportConfig) (*Exports, error) {
	var list []*Export
	closeAll := func() {
		for _, e := range list {
			e.Backend.Close()
		}
	}
	for _, ec := range cfgs {
		if err := ec.Validate(); err != nil {
			closeAll()
			return nil, err
		}
		b, err := OpenFile(ec.Path, ec.ReadOnly)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("export %q: %w", ec.Name, err)
		}
		list = append(list, &Export{Name: ec.Name, Description: ec.Description, ReadOnly: ec.ReadOnly, Backend: b})
	}
	t, err := NewExports(list...)
	if err != nil {
		closeAll()
		return nil, err
	}
	return t, nil
}

// Resolve implements Resolver.
func (t *Exports) Resolve(name string) (*Export, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if e, ok := t.byName[name]; ok {
		return e, nil
	}
	if name == "" && len(t.order) == 1 {
		return t.order[0], nil
	}
	return nil, fmt.Errorf("export %q: %w", name, protocol.ErrUnknownExport)
}

// Export implements protocol.ExportProvider.
func (t *Exports) Export(name string) (protocol.ExportInfo, error) {
	e, err := t.Resolve(name)
	if err != nil {
		return protocol.ExportInfo{}, err
	}
	return e.Info(), nil
}

// Exports implements protocol.ExportProvider (NBD_OPT_LIST).
func (t *Exports) Exports() []protocol.ExportInfo {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]protocol.ExportInfo, len(t.order))
	for i, e := range t.order {
		out[i] = e.Info()
	}
	return out
}

// Close closes every backend.
func (t *Exports) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for _, e := range t.order {
		if err := e.Backend.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close export %q: %w", e.Name, err))
		}
	}
	return errors.Join(errs...)
}
