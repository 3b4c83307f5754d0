package pxe

import (
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
)

// newProbeClient is a DHCP client on iface for probeDHCP.
func newProbeClient(iface string) (*nclient4.Client, error) {
	return nclient4.New(iface, nclient4.WithTimeout(3*time.Second), nclient4.WithRetry(1))
}
