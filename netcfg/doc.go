// Package netcfg brings up the network for nbdboot's PID 1: it parses the
// kernel's ip= parameter, runs DHCPv4 or applies a static configuration over
// netlink, and writes resolv.conf and the hostname.
//
// # ip=
//
// [ParseIP] accepts the kernel's syntax (Documentation/admin-guide/nfs/nfsroot.rst)
//
//	ip=<client>:<server>:<gw>:<netmask>:<hostname>:<device>:<autoconf>:<dns0>:<dns1>:<ntp0>
//
// plus the shorthands ip=dhcp (any autoconf name alone), ip=off and ip=none,
// and dracut's ip=<interface>:{dhcp|on|any}. IPv6 addresses are written in
// brackets ([fd00::2]) and take a prefix length as netmask; IPv4 netmasks are
// dotted or a prefix length. dhcp6 and auto6 are rejected with a clear error:
// there is no IPv6 autoconfiguration here. [ParseIPs] combines several ip=
// values (one per interface).
//
// An entry is static when it names a client address and its autoconf field is
// empty, off or none; it is dynamic (DHCPv4) when autoconf is on, any, dhcp,
// bootp or both, or when neither a client address nor autoconf is given (the
// kernel's default). BOOTP-only servers are not supported (the client speaks
// DHCP) and rarp is refused by [Configure].
//
// Without a device the kernel's rule applies: every broadcast-capable,
// non-loopback link is brought up and the first one with carrier is used.
//
// # Configuring
//
// [Configure] is what the init calls: it picks the link, waits for carrier
// (subscribed to link updates, with a deadline), runs DHCP or takes the
// static values, applies them, writes resolv.conf and sets the hostname, and
// returns a [Result] with the addresses, gateway, DNS, root path (DHCP option
// 17, for nbdroot=dhcp), hostname and per-phase timings.
//
// Links, addresses and routes are set over netlink on an explicit
// *netlink.Handle with the idempotent Replace calls, so applying the same
// configuration twice changes nothing (see [Apply]).
//
// # Lease policy
//
// The root filesystem lives on the network, so the boot address must never
// disappear under the running system. netcfg does both things LTSP and
// well-behaved clients do:
//
//   - the DHCP address is installed with a permanent lifetime (valid_lft and
//     preferred_lft forever), so the kernel never removes it, even if every
//     renewal fails;
//   - [RenewLoop] keeps renewing the lease from the resident process (at T1,
//     retrying until T2 and past expiry; its tests drive the time in a
//     testing/synctest bubble) so the server's lease table keeps the address
//     reserved for this client;
//     [KeepLeases] runs it for every DHCP link of a [Result].
//
// A renewal never removes or changes the installed address: if the server
// hands out a different address or refuses (NAK) the loop reports it and
// keeps the boot address, because changing it would cut the root device.
package netcfg
