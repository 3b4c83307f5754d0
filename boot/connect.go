package boot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// attemptTimeout bounds one dial plus handshake.
const attemptTimeout = 10 * time.Second

// flagCanMultiConn is NBD_FLAG_CAN_MULTI_CONN.
const flagCanMultiConn = 1 << 8

// session is the result of connecting: the server that answered, its
// export, and the negotiated connections.
type session struct {
	target Target
	export Export
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
func (b *booter) connect(ctx context.Context, targets []Target) (*session, error) {
	ph := b.log.Phase("connect")
	r := newRetrier(b.env.Clock, b.cfg.retry())
	errs := make([]string, len(targets))
	for attempt := 1; ; attempt++ {
		for i, t := range targets {
			conn, exp, err := b.dialNegotiate(ctx, t)
			if err == nil {
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

// dialNegotiate opens one connection and runs the handshake on it.
func (b *booter) dialNegotiate(ctx context.Context, t Target) (net.Conn, Export, error) {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	conn, err := b.env.Dialer.DialContext(ctx, "tcp", t.Addr())
	if err != nil {
		return nil, Export{}, fmt.Errorf("dial %s: %w", t.Addr(), err)
	}
	exp, err := b.env.Negotiate(ctx, conn, NegotiateRequest{Export: t.Export, ClientID: b.cfg.ClientID})
	if err != nil {
		conn.Close()
		return nil, Export{}, fmt.Errorf("negotiate export %q: %w", t.Export, err)
	}
	if exp.Size == 0 {
		conn.Close()
		return nil, Export{}, fmt.Errorf("export %q has size 0", t.Export)
	}
	return conn, exp, nil
}

// wantConns is how many connections to open: nbdboot.connections when the
// server advertises CAN_MULTI_CONN, else one (the kernel refuses several
// sockets without it).
func wantConns(configured int, flags uint16) int {
	if configured <= 1 || flags&flagCanMultiConn == 0 {
		return 1
	}
	return configured
}

// extraConns opens the additional connections of a multi-conn session.
// One that fails leaves the session with fewer connections, not none.
func (b *booter) extraConns(ctx context.Context, s *session) {
	n := wantConns(b.cfg.Connections, s.export.Flags)
	if b.cfg.Connections > 1 && n == 1 {
		b.log.Printf("connect: server does not advertise CAN_MULTI_CONN; using 1 connection, not %d", b.cfg.Connections)
	}
	for len(s.conns) < n {
		conn, exp, err := b.dialNegotiate(ctx, s.target)
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
