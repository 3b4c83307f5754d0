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
// On any failure PID 1 must not return (a returning PID 1 panics the
// kernel): Main prints what failed and what to check, then runs the rescue
// shell on the console, forever.
package boot
