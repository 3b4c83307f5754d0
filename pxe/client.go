package pxe

import (
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// firmware is what kind of boot client sent a DHCP request.
type firmware int

const (
	notPXE   firmware = iota // no PXE vendor class: not ours to boot
	biosPXE                  // a BIOS PXE ROM: iPXE's undionly.kpxe over TFTP
	efiPXE                   // an x86-64 UEFI PXE client: snponly.efi over TFTP
	ipxe                     // iPXE (user class "iPXE"): the script over HTTP
	otherPXE                 // a PXE client of an architecture we have no iPXE for
)

func (f firmware) String() string {
	return [...]string{"not-pxe", "bios", "uefi", "ipxe", "unsupported-arch"}[f]
}

// classify tells what sent m: PXE clients send the vendor class
// PXEClient (option 60) and their architecture (option 93); iPXE adds
// the user class iPXE (option 77), whatever ROM loaded it.
func classify(m *dhcpv4.DHCPv4) firmware {
	if !strings.HasPrefix(m.ClassIdentifier(), "PXEClient") {
		return notPXE
	}
	for _, uc := range m.UserClass() {
		if uc == "iPXE" {
			return ipxe
		}
	}
	archs := m.ClientArch()
	if len(archs) == 0 {
		return biosPXE // option 93 missing: old BIOS ROMs
	}
	switch archs[0] {
	case iana.INTEL_X86PC:
		return biosPXE
	case iana.EFI_X86_64, iana.EFI_BC:
		return efiPXE
	}
	return otherPXE
}
