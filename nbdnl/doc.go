// Package nbdnl drives the Linux kernel's nbd block driver.
//
// The primary interface is the "nbd" generic netlink family (Conn): CONNECT
// hands already-negotiated sockets to the kernel, which then owns them, so no
// process has to stay alive for I/O; RECONFIGURE replaces dead sockets after
// a reconnect; LINK_DEAD notifications (WatchLinkDead) tell a supervisor
// when to reconnect. Kernels without the netlink family are served by the
// older ioctl interface (AttachIoctl), where NBD_DO_IT blocks for the
// device's whole life. Attach picks between them.
//
// Request bodies are built by pure functions (encodeConnect and friends) and
// replies are decoded by offset after length checks, so both are tested with
// byte vectors without a kernel. Sys reads /sys/block/nbdN (pid, backend,
// partitions) and RescanPartitions asks the kernel to re-read a partition
// table.
//
// golang.org/x/sys/unix has no NBD constants; they are defined here from the
// kernel's include/uapi/linux/nbd.h and nbd-netlink.h.
package nbdnl
