package pxe

import (
	"fmt"
	"net"
	"path"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// bootFiles is what the replies point machines to.
type bootFiles struct {
	ip       net.IP // this host on the interface: TFTP and HTTP server
	httpPort int
	bios     string // TFTP name of the BIOS iPXE (the file's base name)
	efi      string // TFTP name of the UEFI iPXE
}

// macPath is mac as it appears in TFTP names and URLs: 52-54-00-12-34-56.
func macPath(mac net.HardwareAddr) string { return strings.ReplaceAll(mac.String(), ":", "-") }

// scriptURL is the iPXE script's URL for mac.
func (b bootFiles) scriptURL(mac net.HardwareAddr) string {
	return fmt.Sprintf("%s/script.ipxe", b.baseURL(mac))
}

// baseURL is the HTTP directory of mac's boot files.
func (b bootFiles) baseURL(mac net.HardwareAddr) string {
	return fmt.Sprintf("http://%s/boot/%s", net.JoinHostPort(b.ip.String(), fmt.Sprint(b.httpPort)), macPath(mac))
}

// pxeBypass is option 43 (PXE vendor options) holding only sub-option 6,
// discovery control, set to 8: skip boot server discovery, boot the file
// named in the reply.
var pxeBypass = []byte{
	6, 1, 8, // PXE_DISCOVERY_CONTROL, length 1, bit 3: use the boot file
	255, // end
}

// addBoot adds to reply the boot instructions for a client of kind fw:
// iPXE over TFTP for a PXE ROM, the script over HTTP for iPXE. A UEFI
// ROM's first answer (on port 67) carries no option 43, which sends it
// on to port 4011 (binl false there): most UEFI firmware boots only that
// way (pixiecore's README.booting). It reports the file named.
func (b bootFiles) addBoot(reply, req *dhcpv4.DHCPv4, fw firmware, port4011 bool) string {
	mac := req.ClientHWAddr
	reply.UpdateOption(dhcpv4.OptClassIdentifier("PXEClient"))
	if guid := req.GetOneOption(dhcpv4.OptionClientMachineIdentifier); guid != nil {
		reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, guid))
	}
	reply.ServerIPAddr = b.ip
	switch fw {
	case ipxe:
		reply.BootFileName = b.scriptURL(mac)
	case biosPXE:
		reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionVendorSpecificInformation, pxeBypass))
		reply.ServerHostName = b.ip.String()
		reply.BootFileName = path.Join(macPath(mac), b.bios)
	case efiPXE:
		reply.ServerHostName = b.ip.String()
		reply.BootFileName = path.Join(macPath(mac), b.efi)
	}
	return reply.BootFileName
}
