package boot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/nbdboot/nbdboot/bootcfg"
	"github.com/nbdboot/nbdboot/protocol"
)

// ClientIDNone is the nbdboot.clientid= value that sends no client id:
// the export is asked for by its plain name.
const ClientIDNone = "none"

// connect tries each target in order, over and over with backoff, until
// one negotiates or the retry deadline passes; then opens the extra
// connections when both the config and the server allow several.
func (b *booter) connect(ctx context.Context, targets []bootcfg.Address) (*Session, error) {
	ph := b.log.Phase("connect")
	r := newRetrier(b.env.Clock, retry(b.cfg))
	nm := b.newNamer()
	errs := make([]string, len(targets))
	for attempt := 1; ; attempt++ {
		for i, t := range targets {
			conn, exp, name, err := b.dialNegotiate(ctx, t, nm)
			if err == nil {
				t.Export = name
				s := &Session{Target: t, Export: exp, Conns: []net.Conn{conn}}
				ph.Done("%s: %d bytes, flags %#04x (attempt %d)", t, exp.Size, exp.Flags, attempt)
				b.extraConns(ctx, s)
				return s, nil
			}
			errs[i] = fmt.Sprintf("%s: %v", t, err)
			ph.Debugf("attempt %d: %s: %v", attempt, t, err)
		}
		if attempt == 1 || attempt%10 == 0 {
			ph.Printf("no server answered yet (%s); retrying for up to %s", strings.Join(errs, "; "), retry(b.cfg))
		}
		if !r.next(ctx) {
			return nil, fail("connect", fmt.Errorf("no server answered within %s: %s",
				retry(b.cfg), strings.Join(errs, "; ")), hintConnect)
		}
	}
}

// dialNegotiate negotiates t's export under the name nm gives it
// (NAME/CLIENT-ID); when the server does not know that name, it falls
// back to the plain NAME on a new connection, and nm remembers to ask
// that server for the plain name from then on. It returns the name
// negotiated.
func (b *booter) dialNegotiate(ctx context.Context, t bootcfg.Address, nm *exportNamer) (net.Conn, protocol.ExportInfo, string, error) {
	req := nm.request(t)
	conn, exp, err := b.connector().Open(ctx, t.Server, req)
	if err == nil || req.ClientID == "" || !errors.Is(err, protocol.ErrUnknownExport) {
		return conn, exp, req.Name(), err
	}
	nm.fallBack(t)
	why := err.Error()
	if oe := (*protocol.OptionError)(nil); errors.As(err, &oe) && oe.Message != "" {
		why = oe.Message // the server's own words
	}
	b.log.Printf("connect: %s does not know export %q (%s); falling back to the plain export %q, without a per-client overlay on the server",
		t.Addr(), req.Name(), why, t.Export)
	conn, exp, err = b.connector().Open(ctx, t.Server, NegotiateRequest{Export: t.Export})
	return conn, exp, t.Export, err
}

// connector is the boot's Connector.
func (b *booter) connector() Connector {
	return Connector{Dialer: b.env.Dialer, Negotiate: b.env.Negotiate}
}

// extraConns opens the additional connections of a multi-conn session,
// under the export name the first one negotiated. One that fails leaves
// the session with fewer connections, not none.
func (b *booter) extraConns(ctx context.Context, s *Session) {
	n := Connections(b.root.Connections, s.Export.Flags)
	if b.root.Connections > 1 && n == 1 {
		b.log.Printf("connect: server does not advertise CAN_MULTI_CONN; using 1 connection, not %d", b.root.Connections)
	}
	if err := b.connector().More(ctx, s, n); err != nil {
		b.log.Printf("connect: %v; going on with %d", err, len(s.Conns))
		return
	}
	if n > 1 {
		b.log.Printf("connect: %d connections (server allows multi-conn)", n)
	}
}
