package boot

import (
	"fmt"
	"os"
)

// ProcessName is the command name (comm) of the resident processes. They
// run /proc/self/exe (the initramfs that held the binary is gone after
// switch_root), which would make the kernel name them "exe"; with this
// name `pgrep nbdboot` finds them and systemd's shutdown log names them.
// Their argv[0] is SupervisorArgv0, starting with '@' as systemd requires
// of root storage daemons it must spare.
const ProcessName = "nbdboot"

// SetProcessName sets the process's command name. It writes
// /proc/self/comm, which names the thread group leader whichever thread
// writes it (prctl(PR_SET_NAME) would name only the calling thread).
func SetProcessName(name string) error {
	if err := os.WriteFile("/proc/self/comm", []byte(name), 0); err != nil {
		return fmt.Errorf("set process name %q: %w", name, err)
	}
	return nil
}
