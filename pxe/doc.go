// Package pxe is nbdserve's network-boot service: it takes a lab PC from
// its network card's PXE ROM to nbdboot's initramfs, from the same
// process and config file that serve the root over NBD.
//
// The chain, as pixiecore and LTSP run it:
//
//  1. The PXE ROM broadcasts a DHCPDISCOVER with the PXE vendor class.
//     The site's DHCP server hands out the address; this service answers
//     as a proxyDHCP server (UDP 67, never an address) with the boot file:
//     iPXE over TFTP (undionly.kpxe for BIOS, snponly.efi for UEFI). UEFI
//     firmware is sent no PXE vendor options and asks again on UDP 4011,
//     the variant most UEFI firmware understands.
//  2. iPXE starts, asks DHCP again with user class "iPXE" and is given the
//     URL of its script on this service's HTTP port.
//  3. The script loads the kernel and the initramfs over HTTP with the
//     machine's command line: the configured template with ${server}
//     (this host's address and NBD port), ${export} and ${mac} filled in,
//     plus the machine's extra words.
//
// Machines are chosen by MAC address (Config.Machines, with a default
// entry for the room): which export, extra command-line words, or
// refused (never answered). With Config.DHCP the service is the room's
// DHCP server as well (an isolated switch): it hands out addresses from a
// range and keeps leases in the state directory; it refuses to start
// when another DHCP server answers on the interface.
//
// Every shared resource has a per-client bound, as a lab where every
// student has root on a machine needs: TFTP transfers (tftp.go, the
// wire format in tftpwire.go) and HTTP connections (httpconn.go) per
// source address, with a stall deadline; DHCP handlers one per MAC with
// places kept for known machines (slots.go); in full-DHCP mode new
// clients admitted at a rate, with addresses kept for the listed
// machines and offers that expire (leases.go).
//
// Every step is logged with the client's MAC (msg=pxe step=...), so a
// machine that does not boot can be followed through the chain; the
// lines are rate-limited per client (internal/ratelog): per source
// address for TFTP and HTTP, per MAC for known machines' DHCP, and
// together for every other MAC.
package pxe
