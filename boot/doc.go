// Package boot is the PID 1 boot flow of nbdboot: it mounts the kernel's
// pseudo filesystems, reads the kernel command line, loads modules, brings
// the network up, dials and negotiates with the NBD server (retrying until
// the nbdboot.retry deadline), hands the sockets to the kernel's nbd driver,
// mounts the root filesystem (optionally read-only under a tmpfs overlay),
// starts the resident supervisor and switches into the new root.
//
// Every step goes through an interface held in Env, so the whole sequence
// runs in unit tests with fakes and a fake clock. The real implementations
// live in this package too: the Linux system calls (mounts, switch_root,
// the rescue shell, the supervisor) and adapters of the project's bootcfg,
// kmod, netcfg, protocol and nbdnl packages; cmd/nbdboot wires them.
//
// Data flow, for ip=dhcp nbdroot=nbd://10.0.0.1/lab: ReadCmdline returns
// /proc/cmdline; ParseCommandLine (bootcfg.Parse) turns it into the one
// command-line model, a bootcfg.Config (its NBD field a bootcfg.Target:
// servers as bootcfg.Server, the export "lab"), which the boot keeps for
// the network, modules, retry, overlay and shell settings. Its ip= values
// stay unparsed (Config.IP) until NetcfgNetwork.Up hands them to netcfg,
// which parses them and brings the network up (NetInfo: interface, its
// index, MAC, the DHCP root-path). resolveRoot merges the Config with the
// target (Config.Resolve; for nbdroot=dhcp the target the DHCP root-path
// names) into a bootcfg.Boot: the root device as an nbdnl.Device, block
// size, timeouts, connections. connect asks each of Boot.Addresses()
// (bootcfg.Address) through the Connector (session.go): a
// NegotiateRequest{Export: "lab", ClientID: the MAC} goes on the wire as
// "lab/MAC"; the server's answer is a protocol.ExportInfo, kept with the
// connections in a Session. attach turns the ExportInfo into an
// nbdnl.ConnectConfig (nbdnl.ExportConfig: the one block-size rule, the
// size in whole blocks, the transmission flags), adds the index, the
// timeouts and the backend identifier (the Address) and hands it with the
// connections to the Device as an AttachRequest; NetlinkDevice takes the
// sockets as files (SocketFiles) and sends the netlink CONNECT
// (nbdnl.Conn.Connect, attributes by mdlayher/netlink's encoder), or,
// without the netlink family or with nbdboot.attach=ioctl, starts the
// ioctl keeper with that same ConnectConfig as its arguments (KeeperArgs,
// ParseKeeperArgs) for nbdnl.Sys.AttachIoctl. The State file carries the
// Address, the export's size and flags to the supervisor, whose reconnects
// use the same Connector. nbdboot attach uses the same Connector and
// nbdnl.ExportConfig.
//
// On any failure PID 1 must not return (a returning PID 1 panics the
// kernel): Main prints what failed and what to check, then runs the rescue
// shell on the console, forever.
package boot
