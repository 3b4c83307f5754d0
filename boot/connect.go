package boot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/nbdboot/nbdboot/bootcfg"
	"github.com/nbdboot/nbdboot/protocol"
)

// attemptTimeout bounds one dial plus handshake.
const attemptTimeout = 10 * time.Second

// ClientIDNone is the nbdboot.clientid= value that sends no client id:
// the export is asked for by its plain name.
const ClientIDNone = "none"

// session is the result of connecting: the server that answered, its
// export, and the negotiated connections. target.Export is the name
// actually negotiated (NAME/CLIENT-ID, or NAME after a fallback): the
// supervisor reconnects with it, so a client keeps its overlay.
type session struct {
	target bootcfg.Address
	export protocol.ExportInfo
	conns  []net.Conn
}

func (s *session) close() {
	for _, c := range s.conns {
		c.Close()
	}
}

// connect tries each target in order, over and over with backoff, until
// one negotiates or the retry deadline passes; then opens the extra
// connections when both the config and the server allow several.
func (b *booter) connect(ctx context.Context, targets []bootcfg.Address) (*session, error) {
	ph := b.log.Phase("connect")
	r := newRetrier(b.env.Clock, b.cfg.retry())
	nm := b.newNamer()
	errs := make([]string, len(targets))
	for attempt := 1; ; attempt++ {
		for i, t := range targets {
			conn, exp, name, err := b.dialNegotiate(ctx, t, nm)
			if err == nil {
				t.Export = name
				s := &session{target: t, export: exp, conns: []net.Conn{conn}}
				ph.Done("%s: %d bytes, flags %#04x (attempt %d)", t, exp.Size, exp.Flags, attempt)
				b.extraConns(ctx, s)
				return s, nil
			}
			errs[i] = fmt.Sprintf("%s: %v", t, err)
			ph.Debugf("attempt %d: %s: %v", attempt, t, err)
		}
		if attempt == 1 || attempt%10 == 0 {
			ph.Printf("no server answered yet (%s); retrying for up to %s", strings.Join(errs, "; "), b.cfg.retry())
		}
		if !r.next(ctx) {
			return nil, fail("connect", fmt.Errorf("no server answered within %s: %s",
				b.cfg.retry(), strings.Join(errs, "; ")), hintConnect)
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
	conn, exp, err := b.dialNegotiateName(ctx, t, req)
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
	conn, exp, err = b.dialNegotiateName(ctx, t, NegotiateRequest{Export: t.Export})
	return conn, exp, t.Export, err
}

// dialNegotiateName opens one connection to t and negotiates req on it.
func (b *booter) dialNegotiateName(ctx context.Context, t bootcfg.Address, req NegotiateRequest) (net.Conn, protocol.ExportInfo, error) {
	name := req.Name()
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	conn, err := b.env.Dialer.DialContext(ctx, "tcp", t.Addr())
	if err != nil {
		return nil, protocol.ExportInfo{}, fmt.Errorf("dial %s: %w", t.Addr(), err)
	}
	exp, err := b.env.Negotiate(ctx, conn, req)
	if err != nil {
		conn.Close()
		return nil, protocol.ExportInfo{}, fmt.Errorf("negotiate export %q: %w", name, err)
	}
	if exp.Size == 0 {
		conn.Close()
		return nil, protocol.ExportInfo{}, fmt.Errorf("export %q has size 0", name)
	}
	return conn, exp, nil
}

// wantConns is how many connections to open: nbdboot.connections when the
// server advertises CAN_MULTI_CONN, else one (the kernel refuses several
// sockets without it).
func wantConns(configured int, flags uint16) int {
	if configured <= 1 || flags&protocol.FlagCanMultiConn == 0 {
		return 1
	}
	return configured
}

// extraConns opens the additional connections of a multi-conn session,
// under the export name the first one negotiated. One that fails leaves
// the session with fewer connections, not none.
func (b *booter) extraConns(ctx context.Context, s *session) {
	n := wantConns(b.cfg.Connections, s.export.Flags)
	if b.cfg.Connections > 1 && n == 1 {
		b.log.Printf("connect: server does not advertise CAN_MULTI_CONN; using 1 connection, not %d", b.cfg.Connections)
	}
	for len(s.conns) < n {
		conn, exp, err := b.dialNegotiateName(ctx, s.target, NegotiateRequest{Export: s.target.Export})
		if err == nil && (exp.Size != s.export.Size || exp.Flags != s.export.Flags) {
			conn.Close()
			err = errors.New("export changed between connections")
		}
		if err != nil {
			b.log.Printf("connect: connection %d of %d to %s: %v; going on with %d",
				len(s.conns)+1, n, s.target, err, len(s.conns))
			return
		}
		s.conns = append(s.conns, conn)
	}
	if n > 1 {
		b.log.Printf("connect: %d connections (server allows multi-conn)", n)
	}
}
