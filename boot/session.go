package boot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/nbdboot/nbdboot/bootcfg"
	"github.com/nbdboot/nbdboot/protocol"
)

// Connector is the one dial→negotiate pipeline of the boot, the resident
// supervisor's reconnects and nbdboot attach: it opens TCP connections to
// a server, negotiates an export on each and checks what the server said.
type Connector struct {
	Dialer    Dialer
	Negotiate Negotiator
	// Timeout bounds one dial plus handshake; 0 means attemptTimeout.
	Timeout time.Duration
}

// attemptTimeout bounds one dial plus handshake at boot.
const attemptTimeout = 10 * time.Second

// Session is a negotiated export: the server and export name that
// answered (Target.Export is the name negotiated, NAME/CLIENT-ID when a
// client id was sent), what the server said of the export, and the
// connections, in the transmission phase.
type Session struct {
	Target bootcfg.Address
	Export protocol.ExportInfo
	Conns  []net.Conn
}

// Close closes the session's connections (after the kernel took its own
// references to the sockets, or on failure).
func (s *Session) Close() {
	for _, c := range s.Conns {
		c.Close()
	}
}

// Open opens one connection to srv and negotiates req on it. An export
// of size 0 is refused (the kernel cannot attach it).
func (c Connector) Open(ctx context.Context, srv bootcfg.Server, req NegotiateRequest) (net.Conn, protocol.ExportInfo, error) {
	name := req.Name()
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = attemptTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := c.Dialer.DialContext(ctx, "tcp", srv.Addr())
	if err != nil {
		return nil, protocol.ExportInfo{}, fmt.Errorf("dial %s: %w", srv.Addr(), err)
	}
	exp, err := c.Negotiate(ctx, conn, req)
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

// Connections is how many connections to open: the number asked for when
// the export advertises CAN_MULTI_CONN, else one (the kernel refuses
// several sockets without it).
func Connections(asked int, flags uint16) int {
	if asked <= 1 || flags&protocol.FlagCanMultiConn == 0 {
		return 1
	}
	return asked
}

// errExportChanged marks a server whose export does not match the one
// negotiated before (on the first connection, or at boot).
var errExportChanged = errors.New("export changed")

// More opens connections to s's server, under the name s negotiated,
// until s has n; each must show the same size and flags as s.Export. It
// stops at the first failure and returns it: s keeps the connections
// opened so far.
func (c Connector) More(ctx context.Context, s *Session, n int) error {
	for len(s.Conns) < n {
		conn, exp, err := c.Open(ctx, s.Target.Server, NegotiateRequest{Export: s.Target.Export})
		if err == nil && (exp.Size != s.Export.Size || exp.Flags != s.Export.Flags) {
			conn.Close()
			err = fmt.Errorf("%w between connections: size %d flags %#x, the first had size %d flags %#x",
				errExportChanged, exp.Size, exp.Flags, s.Export.Size, s.Export.Flags)
		}
		if err != nil {
			return fmt.Errorf("connection %d of %d to %s: %w", len(s.Conns)+1, n, s.Target, err)
		}
		s.Conns = append(s.Conns, conn)
	}
	return nil
}

// SocketFiles returns the sockets of conns as files, for handing to the
// kernel; the caller closes them once the kernel has taken its own
// references.
func SocketFiles(conns []net.Conn) ([]*os.File, error) {
	files := make([]*os.File, 0, len(conns))
	for _, c := range conns {
		fc, ok := c.(interface{ File() (*os.File, error) })
		var err error
		var f *os.File
		if !ok {
			err = fmt.Errorf("connection %s has no socket file", c.RemoteAddr())
		} else if f, err = fc.File(); err != nil {
			err = fmt.Errorf("socket of %s: %w", c.RemoteAddr(), err)
		}
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, err
		}
		files = append(files, f)
	}
	return files, nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
