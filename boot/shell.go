package boot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"syscall"
)

// ErrNoShell means none of the shell candidates exists.
var ErrNoShell = errors.New("no shell found in the initramfs")

// ShellCandidates are the shells looked for, in order: u-root's gosh in
// its usual places, then a plain /bin/sh, then busybox. argv[0] is the
// path itself: u-root's busybox binary dispatches on its base name.
var ShellCandidates = []string{"/bbin/gosh", "/bin/gosh", "/bin/sh", "/bbin/sh", "/bin/busybox"}

// ConsoleShell runs the first shell found among Candidates on the
// process's own stdin, stdout and stderr (the console for PID 1).
type ConsoleShell struct {
	Candidates []string
	Log        *Logger
}

// Find returns the first candidate that is an executable file.
func (s ConsoleShell) Find() (string, error) {
	for _, p := range s.Candidates {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w (looked for %v)", ErrNoShell, s.Candidates)
}

// rescueEnv is the rescue shell's environment: u-root's tools live in
// /bbin in the initramfs, ahead of anything a half-mounted root provides.
var rescueEnv = []string{
	"HOME=/",
	"TERM=linux",
	"PATH=/bbin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
}

// Run starts the shell in its own session and waits for it to exit.
func (s ConsoleShell) Run(ctx context.Context, reason string) error {
	sh, err := s.Find()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, sh)
	if path.Base(sh) == "busybox" {
		cmd.Args = []string{sh, "sh"}
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(append([]string(nil), rescueEnv...), "NBDBOOT_RESCUE="+reason) // gosh prints "$ " whatever PS1 says
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if s.Log != nil {
		s.Log.Printf("rescue: %s", sh)
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("run %s: %w", sh, err)
	}
	return nil
}
