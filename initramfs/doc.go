// Package initramfs builds the initramfs nbdboot boots from.
//
// The image holds:
//
//   - nbdboot as /bin/nbdboot with /init linking to it, so that it runs as
//     PID 1 itself (not as a uinit below u-root's init). It is built with a
//     plain `go build` (static: CGO_ENABLED=0, -trimpath, -buildid=), not in
//     gobusybox mode, whose rewritten mains dispatch on argv[0] and would
//     see "init"; the Go build cache keeps rebuilds quick.
//   - u-root's core tools and the gosh shell (built with the goshsmall tag)
//     as one busybox-mode binary /bbin/bb with a link per command, /bin/sh
//     linking to gosh. The rescue shell needs PATH=/bbin:/bin. mkuimage
//     rebuilds everything for this archive (go build -a), so it is cached
//     in Config.CacheDir under a digest of its sources.
//   - kernel modules under /lib/modules/VERSION: the requested ones with
//     their modules.dep dependencies and modules.softdep soft dependencies
//     (ext4 needs crc32c), and modules.dep, modules.softdep, modules.alias,
//     modules.order filtered to them, plus modules.builtin(.modinfo).
//   - /dev/console and /dev/null, so the init has its console before it
//     mounts devtmpfs.
//
// Build runs the Go toolchain on module sources: run it from a checkout of
// this repository (Config.Dir, `nbdboot initramfs -C`), whose go.mod pins
// u-root's commands.
//
// The same inputs give the same bytes: the cpio has sorted entries with zero
// mtimes, uids and inode numbers, binaries carry no build id or paths, and
// the gzip stream has no name or timestamp. Config.Reuse skips the build
// when OUTPUT.inputs records the same digest of all inputs.
package initramfs
