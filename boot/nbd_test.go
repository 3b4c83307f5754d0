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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := oneExport{protocol.ExportInfo{Name: "root", Size: 1 << 20,
		Flags: protocol.FlagHasFlags | protocol.FlagCanMultiConn, MinBlock: 512, PrefBlock: 4096, MaxBlock: 1 << 25}}
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		export string
		want   Export
		err    error
	}{
		{"root", Export{Name: "root", Size: 1 << 20, Flags: protocol.FlagHasFlags | protocol.FlagCanMultiConn,
			MinBlock: 512, PrefBlock: 4096, MaxBlock: 1 << 25}, nil},
		{"nope", Export{}, protocol.ErrUnknownExport},
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
