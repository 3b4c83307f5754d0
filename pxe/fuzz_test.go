package pxe

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/nbdboot/nbdboot/internal/tomlx"
)

// FuzzAnswer feeds any datagram to both modes and both ports, as a
// hostile machine on the wire can: nothing panics, and every answer
// survives a round trip through the wire format with the client's
// transaction id and MAC, and never hands out an address in proxyDHCP
// mode.
func FuzzAnswer(f *testing.F) {
	for _, seed := range []struct {
		typ  dhcpv4.MessageType
		arch int
		uc   string
	}{{dhcpv4.MessageTypeDiscover, 0, ""}, {dhcpv4.MessageTypeRequest, 7, ""}, {dhcpv4.MessageTypeDiscover, 0, "iPXE"}, {dhcpv4.MessageTypeRequest, -1, ""}} {
		m, err := dhcpv4.New(dhcpv4.WithMessageType(seed.typ), dhcpv4.WithHwAddr(macKnown))
		if err != nil {
			f.Fatal(err)
		}
		if seed.arch >= 0 {
			m.UpdateOption(dhcpv4.OptClassIdentifier("PXEClient"))
		}
		if seed.uc != "" {
			m.UpdateOption(dhcpv4.OptUserClass(seed.uc))
		}
		f.Add(m.ToBytes())
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := dhcpv4.FromBytes(data)
		if err != nil {
			return
		}
		proxy, _ := testService(t, Machine{Export: "lab"}, Machine{MAC: macOther.String(), Refuse: true})
		full, _ := testService(t, Machine{Export: "lab"})
		full.cfg.DHCP = &DHCPConfig{RangeStart: "10.0.3.100", RangeEnd: "10.0.3.103", Lease: tomlx.Duration(time.Hour)}
		p, _ := full.cfg.DHCP.pool()
		if full.leases, err = openLeases(filepath.Join(t.TempDir(), "l.json"), p, time.Hour, time.Now); err != nil {
			t.Fatal(err)
		}
		for _, s := range []*Service{proxy, full} {
			for _, port4011 := range []bool{false, true} {
				r := s.answer(m, port4011)
				if r == nil {
					continue
				}
				back, err := dhcpv4.FromBytes(r.ToBytes())
				if err != nil {
					t.Fatalf("answer does not parse back: %v", err)
				}
				if back.TransactionID != m.TransactionID || !bytes.Equal(back.ClientHWAddr, m.ClientHWAddr) {
					t.Fatalf("answer xid %s mac %s, request %s %s", back.TransactionID, back.ClientHWAddr, m.TransactionID, m.ClientHWAddr)
				}
				if s == proxy && !back.YourIPAddr.IsUnspecified() {
					t.Fatalf("proxyDHCP handed out %s", back.YourIPAddr)
				}
			}
		}
	})
}

// FuzzParseRRQ: any datagram either is refused or parses to a request
// that encodes back to bytes parsing to the same request, with a block
// size in RFC 2348's range.
func FuzzParseRRQ(f *testing.F) {
	f.Add(rrq{name: "52-54-00-9e-00-01/undionly.kpxe", mode: "octet"}.bytes())
	f.Add(rrq{name: "52-54-00-9e-00-01/snponly.efi", mode: "octet", blksize: 1468, tsize: true}.bytes())
	f.Add([]byte("\x00\x01a\x00octet\x00timeout\x00255\x00windowsize\x0064\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := parseRRQ(data)
		if err != nil {
			return
		}
		if r.blksize != 0 && (r.blksize < 8 || r.blksize > 65464) {
			t.Fatalf("blksize %d accepted", r.blksize)
		}
		if bytes.IndexByte([]byte(r.name+r.mode), 0) >= 0 {
			return // a NUL inside cannot be encoded back; parse never yields one
		}
		back, err := parseRRQ(r.bytes())
		if err != nil || back != r {
			t.Fatalf("%+v encodes to %q, which parses to %+v, %v", r, r.bytes(), back, err)
		}
	})
}
