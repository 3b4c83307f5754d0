package boot

import "golang.org/x/sys/unix"

const (
	msRdonly = unix.MS_RDONLY
	msNosuid = unix.MS_NOSUID
	msNodev  = unix.MS_NODEV
	msNoexec = unix.MS_NOEXEC
)

// EarlyMounts is the table of pseudo filesystems PID 1 mounts first. The
// Debian kernel has DEVTMPFS built in but does not mount it automatically.
// /run is the tmpfs handed over to the real root (systemd expects it).
var EarlyMounts = []Action{
	Dir{"/proc", 0o555},
	Mount{Source: "proc", Target: "/proc", FSType: "proc", Flags: msNosuid | msNodev | msNoexec},
	Dir{"/sys", 0o555},
	Mount{Source: "sysfs", Target: "/sys", FSType: "sysfs", Flags: msNosuid | msNodev | msNoexec},
	Dir{"/dev", 0o755},
	Mount{Source: "devtmpfs", Target: "/dev", FSType: "devtmpfs", Flags: msNosuid, Data: "mode=0755"},
	Dir{"/dev/pts", 0o755},
	Mount{Source: "devpts", Target: "/dev/pts", FSType: "devpts", Flags: msNosuid | msNoexec, Data: "gid=5,mode=620,ptmxmode=000"},
	Dir{"/run", 0o755},
	Mount{Source: "tmpfs", Target: "/run", FSType: "tmpfs", Flags: msNosuid | msNodev, Data: "mode=0755"},
	Dir{"/tmp", 0o1777},
}
