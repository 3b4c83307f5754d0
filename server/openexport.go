package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/nbdboot/nbdboot/cow"
	"github.com/nbdboot/nbdboot/protocol"
)

// connProvider answers one connection's handshake: for the client's
// address when the Resolver knows addresses (PeerResolver), and, for GO
// and EXPORT_NAME (protocol.ExportOpener), it acquires the export right
// there, opening a copy-on-write overlay, so that a failure of that
// file work (a directory, a full disk, the descriptor limit) is the NBD
// error the client sees, never an acknowledged GO followed by a dropped
// connection. The handshake keeps its deadline and negotiation slot
// meanwhile. What it acquired is handed over by take, or released by
// abandon when the handshake failed after it.
type connProvider struct {
	res  Resolver
	peer net.Addr
	log  *slog.Logger

	exp     *Export
	release func()
}

// Export resolves name for INFO and the meta context options.
func (p *connProvider) Export(name string) (protocol.ExportInfo, error) {
	if pr, ok := p.res.(PeerResolver); ok {
		return pr.ExportFrom(name, p.peer)
	}
	return p.res.Export(name)
}

// Exports answers LIST.
func (p *connProvider) Exports() []protocol.ExportInfo {
	if pr, ok := p.res.(PeerResolver); ok {
		return pr.ExportsFrom(p.peer)
	}
	return p.res.Exports()
}

// OpenExport resolves name and acquires what it serves (GO, EXPORT_NAME).
func (p *connProvider) OpenExport(name string) (protocol.ExportInfo, error) {
	info, err := p.Export(name)
	if err != nil {
		return info, err
	}
	p.abandon() // a GO acquires once: its acknowledgement ends the handshake
	exp, release, err := p.res.AcquireFrom(info, p.peer)
	if err != nil {
		return protocol.ExportInfo{}, p.openError(name, err)
	}
	p.exp, p.release = exp, release
	return info, nil
}

// openError is what the client is told when the export cannot be
// acquired: the export's and the overlay caps' refusals as they are (an
// overlay refused for its cap, its base or its use is ERR_POLICY); a
// failure of the file work is logged here and reaches the client without
// the server's paths (ERR_PLATFORM).
func (p *connProvider) openError(name string, err error) error {
	switch {
	case errors.Is(err, protocol.ErrUnknownExport), errors.Is(err, protocol.ErrPolicy), errors.Is(err, protocol.ErrShutdown):
		return err
	case errors.Is(err, cow.ErrTooMany), errors.Is(err, cow.ErrBaseChanged), errors.Is(err, cow.ErrBusy):
		return fmt.Errorf("%w: %w", err, protocol.ErrPolicy)
	}
	p.log.Warn("cannot open the export asked for", "export", name, "err", err)
	return fmt.Errorf("export %q cannot be opened now (the server's log says why)", name)
}

// take hands over what the handshake's GO or EXPORT_NAME acquired.
func (p *connProvider) take() (*Export, func()) {
	exp, release := p.exp, p.release
	p.exp, p.release = nil, nil
	return exp, release
}

// abandon releases what was acquired for a handshake that did not end
// with it.
func (p *connProvider) abandon() {
	if p.release != nil {
		p.release()
	}
	p.exp, p.release = nil, nil
}
