package boot

import (
	"context"
	"fmt"
	"net"
	"os"

	"github.com/nbdboot/nbdboot/bootcfg"
	"github.com/nbdboot/nbdboot/nbdnl"
	"github.com/nbdboot/nbdboot/netcfg"
	"github.com/nbdboot/nbdboot/protocol"
)

// NetlinkReconfigure hands conns to device index with the nbd family's
// RECONFIGURE, repeating the backend identifier given at CONNECT (the
// kernel refuses a mismatch).
func NetlinkReconfigure(index uint32, conns []net.Conn, backendID string) error {
	files := make([]*os.File, 0, len(conns))
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, c := range conns {
		fc, ok := c.(interface{ File() (*os.File, error) })
		if !ok {
			return fmt.Errorf("connection %s has no socket file", c.RemoteAddr())
		}
		f, err := fc.File()
		if err != nil {
			return fmt.Errorf("socket of %s: %w", c.RemoteAddr(), err)
		}
		files = append(files, f)
	}
	nl, err := nbdnl.Dial()
	if err != nil {
		return err
	}
	defer nl.Close()
	return nl.Reconfigure(index, nbdnl.ReconfigureConfig{Sockets: files, BackendID: backendID})
}

// StateDialer is the Reconnector's Dial: the boot's own dial and
// handshake (connect.go), configured as at boot from the state file,
// asking for exactly the export name the target carries (the boot's
// negotiated NAME or NAME/CLIENT-ID), with no fallback.
func StateDialer(st State, dialer Dialer, negotiate Negotiator, log *Logger, clock netcfg.Clock) func(context.Context, bootcfg.Address) (net.Conn, protocol.ExportInfo, error) {
	b := &booter{
		env: &Env{Dialer: dialer, Negotiate: negotiate, Log: log, Clock: clock},
		log: log,
		cfg: &Config{Servers: st.Servers, ClientID: st.ClientID, Connections: st.Connections,
			Timeout: st.Timeout, DeadConn: st.DeadConn, Overlay: st.Overlay, Debug: st.Debug},
	}
	return func(ctx context.Context, t bootcfg.Address) (net.Conn, protocol.ExportInfo, error) {
		return b.dialNegotiateName(ctx, t, NegotiateRequest{Export: t.Export})
	}
}
