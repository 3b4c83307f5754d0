// Package nbdnl drives the Linux kernel's nbd block driver.
//
// The primary interface is the "nbd" generic netlink family (Conn): CONNECT
// hands already-negotiated sockets to the kernel, which then owns them, so no
// process has to stay alive for I/O; RECONFIGURE replaces dead sockets after
// a reconnect; LINK_DEAD notifications (WatchLinkDead) tell a supervisor
// when to reconnect. Kernels without the netlink family are served by the
// older ioctl interface (Sys.AttachIoctl), where NBD_DO_IT blocks for the
// device's whole life. Sys.Attach picks between them.
//
// The kernel's rules: the block size is 0 (default 1024) or a power of two
// from 512 to the page size, and becomes the device's logical block size;
// Geometry derives it from the export's minimum block size. More than one
// socket needs NBD_FLAG_CAN_MULTI_CONN. Timeouts travel in whole seconds.
// Partitions are read when the device is first opened or on BLKRRPART
// (RescanPartitions); Sys.WaitPartition then waits for /dev/nbdNpM.
//
// Request bodies are built by pure functions (encodeConnect and friends)
// with mdlayher/netlink's AttributeEncoder, and replies are decoded with
// its AttributeDecoder, which checks every length; both are tested with
// byte vectors without a kernel. Sys reads /sys/block/nbdN (pid, backend,
// partitions) and RescanPartitions asks the kernel to re-read a partition
// table.
//
// golang.org/x/sys/unix has no NBD constants; they are defined here from the
// kernel's include/uapi/linux/nbd.h and nbd-netlink.h.
package nbdnl
