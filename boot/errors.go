package boot

import "fmt"

// Error is a failed boot phase with advice for the operator.
type Error struct {
	Phase string // "cmdline", "modules", "network", "connect", ...
	Err   error
	Hint  string // what to check
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %v", e.Phase, e.Err) }

func (e *Error) Unwrap() error { return e.Err }

// fail wraps err as the failure of a phase with its hint.
func fail(phase string, err error, hint string) error {
	return &Error{Phase: phase, Err: err, Hint: hint}
}

// Hints for the phases, printed under the error on the console.
const (
	hintCmdline   = "fix the kernel command line (see the parameter named above)"
	hintModules   = "check that the initramfs holds the modules of this kernel (nbdboot initramfs -kmod DIR)"
	hintNetwork   = "check the cable and the DHCP server; use ip=CLIENT::GW:MASK::IFACE:off to configure statically"
	hintRootPath  = "nbdroot=dhcp needs a DHCP root-path (option 17) such as nbd:HOST:PORT:EXPORT; or give nbdroot=HOST,PORT,EXPORT"
	hintConnect   = "check that the server runs and is reachable, and that it exports the name (nbdinfo --list nbd://HOST:PORT)"
	hintAttach    = "check that the nbd module is loaded and the device is not in use (cat /sys/block/nbd*/pid)"
	hintPartition = "check the export's partition table and root=/dev/nbdNpM"
	hintMount     = "check rootfstype= and rootflags=, and that the filesystem's module is in the initramfs"
	hintJournal   = "the root's journal needs recovery and the device is read-only: run e2fsck -p on the image on the server (or boot it once read-write)"
	hintSwitch    = "check init= and that the root filesystem holds /sbin/init"
)
