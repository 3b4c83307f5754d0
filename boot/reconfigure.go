package boot

import (
	"context"
	"net"

	"github.com/nbdboot/nbdboot/bootcfg"
	"github.com/nbdboot/nbdboot/nbdnl"
	"github.com/nbdboot/nbdboot/protocol"
)

// NetlinkReconfigure hands conns to device index with the nbd family's
// RECONFIGURE, repeating the backend identifier given at CONNECT (the
// kernel refuses a mismatch).
func NetlinkReconfigure(index uint32, conns []net.Conn, backendID string) error {
	files, err := SocketFiles(conns)
	if err != nil {
		return err
	}
	defer closeFiles(files)
	nl, err := nbdnl.Dial()
	if err != nil {
		return err
	}
	defer nl.Close()
	return nl.Reconfigure(index, nbdnl.ReconfigureConfig{Sockets: files, BackendID: backendID})
}

// ReconnectDial is the Reconnector's Dial: the boot's own Connector,
// asking for exactly the export name the target carries (the boot's
// negotiated NAME or NAME/CLIENT-ID), with no fallback.
func ReconnectDial(c Connector) func(context.Context, bootcfg.Address) (net.Conn, protocol.ExportInfo, error) {
	return func(ctx context.Context, t bootcfg.Address) (net.Conn, protocol.ExportInfo, error) {
		return c.Open(ctx, t.Server, NegotiateRequest{Export: t.Export})
	}
}
