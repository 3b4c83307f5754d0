// Package bootcfg parses the kernel command line (/proc/cmdline) of a
// machine booting with its root filesystem on NBD into a typed Config.
//
// It understands the forms users already write for dracut and Debian's
// initramfs-tools:
//
//	nbdroot=nbd:HOST:PORT[:FSTYPE[:ROOTFLAGS[:OPTIONS]]]   (PORT may be an export name)
//	nbdroot=nbd:HOST:PORT/EXPORT[:FSTYPE[:ROOTFLAGS[:OPTIONS]]]
//	nbdroot=nbd://HOST[:PORT][,HOST2[:PORT]…]/EXPORT
//	nbdroot=HOST,PORT|EXPORT[,nbdX]                           (initramfs-tools)
//	nbdroot=dhcp, root=dhcp                                  (server from DHCP option 17)
//	root=nbd:…, netroot=nbd:…, root=/dev/nbdN[pM]
//
// plus ip= (kept raw for netcfg), rootfstype=, rootflags=, ro/rw, init=,
// rd.shell, rd.break and the project's own nbdboot.* options. Parse never
// stops at the first problem: it returns every malformed parameter, each
// named with what was expected, together with everything it could parse,
// so that the init can print all mistakes at once before its rescue shell.
//
// ParseNBDRoot parses one NBD root value; the init calls it again on the
// DHCP root-path when the command line said nbdroot=dhcp. ParseURI parses
// the administrator's one-server nbd://HOST[:PORT][/EXPORT] (nbdboot
// attach, list) into an Address, the server and export a connection
// negotiates.
package bootcfg
