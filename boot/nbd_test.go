package boot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/protocol"
)

type oneExport struct{ info protocol.ExportInfo }

func (p oneExport) Export(name string) (protocol.ExportInfo, error) {
	if name != p.info.Name {
		return protocol.ExportInfo{}, fmt.Errorf("%q: %w", name, protocol.ErrUnknownExport)
	}
	return p.info, nil
}

func (p oneExport) Exports() []protocol.ExportInfo { return []protocol.ExportInfo{p.info} }

// Negotiate against the project's own server side of the handshake, over
// a real TCP connection on loopback.
func TestNegotiate(t *testing.T) {
	p := oneExport{protocol.ExportInfo{Name: "root", Size: 1 << 20,
		Flags: protocol.FlagHasFlags | protocol.FlagCanMultiConn, MinBlock: 512, PrefBlock: 4096, MaxBlock: 1 << 25}}
	ln := serveHandshakes(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		export string
		want   protocol.ExportInfo
		err    error
	}{
		{"root", protocol.ExportInfo{Name: "root", Size: 1 << 20, Flags: protocol.FlagHasFlags | protocol.FlagCanMultiConn,
			MinBlock: 512, PrefBlock: 4096, MaxBlock: 1 << 25}, nil},
		{"nope", protocol.ExportInfo{}, protocol.ErrUnknownExport},
	} {
		conn, err := NewDialer().DialContext(ctx, "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		got, err := Negotiate(ctx, conn, NegotiateRequest{Export: tc.export})
		conn.Close()
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("Negotiate(%q) = %+v, %v; want %+v, %v", tc.export, got, err, tc.want, tc.err)
		}
	}
}

// The client id reaches the server as the export name's suffix, the name
// a copy-on-write export of nbdserve keys the client's overlay by.
func TestNegotiateSendsClientID(t *testing.T) {
	ln := serveHandshakes(t, oneExport{protocol.ExportInfo{Name: "lab/pc17", Size: 1 << 20, Flags: protocol.FlagHasFlags}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		req NegotiateRequest
		err error
	}{
		{NegotiateRequest{Export: "lab", ClientID: "pc17"}, nil},
		{NegotiateRequest{Export: "lab"}, protocol.ErrUnknownExport},
	} {
		conn, err := NewDialer().DialContext(ctx, "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		got, err := Negotiate(ctx, conn, tc.req)
		conn.Close()
		if !errors.Is(err, tc.err) || (err == nil && got.Name != "lab/pc17") {
			t.Errorf("Negotiate(%+v) = %+v, %v; want export lab/pc17, error %v", tc.req, got, err, tc.err)
		}
	}
}

// serveHandshakes answers handshakes for p on a loopback listener until
// the test ends.
func serveHandshakes(t *testing.T, p oneExport) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			protocol.ServerHandshake(c, p, protocol.ServerOptions{})
			c.Close()
		}
	}()
	return ln
}
