// Package initramfs builds the initramfs nbdboot boots from.
//
// The image holds nbdboot itself as /init (a static binary, PID 1 directly,
// not a uinit below u-root's init), a rescue shell and u-root's core tools in
// one busybox-style binary under /bbin, and the kernel modules the boot needs
// under /lib/modules/VERSION together with module database files (modules.dep,
// modules.softdep, modules.alias, modules.builtin, modules.order) filtered to
// the modules included.
//
// Go commands are compiled with github.com/u-root/mkuimage from the module
// sources, so Build runs the Go toolchain: call it from a checkout of this
// repository (Config.Dir), whose go.mod pins u-root's commands.
//
// The same inputs give the same bytes: the cpio has sorted entries with zero
// mtimes, uids and inode numbers, binaries are built with -trimpath and an
// empty build id, and the compressed stream carries no timestamp or name.
package initramfs
