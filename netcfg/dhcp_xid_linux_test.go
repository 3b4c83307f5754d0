package netcfg

import (
	"bytes"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	urand "github.com/u-root/uio/rand"
)

func TestXIDReaderFills(t *testing.T) {
	a, b := make([]byte, 16), make([]byte, 16)
	for _, buf := range [][]byte{a, b} {
		if n, err := (xidReader{}).Read(buf); n != len(buf) || err != nil {
			t.Fatalf("Read = %d, %v; want %d, nil", n, err, len(buf))
		}
	}
	if bytes.Equal(a, b) || bytes.Equal(a, make([]byte, 16)) {
		t.Errorf("two reads gave %x and %x", a, b)
	}
}

// The DHCP library's transaction IDs come from xidReader once DHCP ran.
func TestXIDReaderInstalled(t *testing.T) {
	useXIDReader()
	if _, ok := urand.Reader.(xidReader); !ok {
		t.Fatalf("u-root rand.Reader is %T, want xidReader", urand.Reader)
	}
	x, err := dhcpv4.GenerateTransactionID()
	if err != nil {
		t.Fatal(err)
	}
	y, _ := dhcpv4.GenerateTransactionID()
	if x == y {
		t.Errorf("two transaction IDs are both %v", x)
	}
}
