package boot

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nbdboot/nbdboot/bootcfg"
)

// Main runs the boot and never returns: on success the Switcher executes
// init; on failure Main prints what failed and what to check, then runs the
// rescue shell on the console again and again (a returning PID 1 panics
// the kernel). Without a shell, or with nbdboot.shell=0, it blocks forever
// and repeats the error on every signal.
func Main(ctx context.Context, env *Env) {
	cfg, err := Run(ctx, env)
	Rescue(ctx, env, cfg, err)
}

// Rescue reports err and keeps the rescue shell running; it never returns
// unless ctx is cancelled (tests).
func Rescue(ctx context.Context, env *Env, cfg *bootcfg.Config, err error) {
	report(env.Log, err)
	if cfg != nil && !cfg.Shell {
		env.Log.Printf("rescue: shell disabled (nbdboot.shell=0); halted")
		block(ctx, env.Log, err)
		return
	}
	pause := time.Duration(0)
	for ctx.Err() == nil {
		env.Log.Printf("rescue: starting a shell on the console; fix the problem, then reboot (or exit to restart the shell)")
		started := env.Clock.Now()
		serr := env.Shell.Run(ctx, err.Error())
		if errors.Is(serr, ErrNoShell) {
			env.Log.Printf("rescue: %v", serr)
			block(ctx, env.Log, err)
			return
		}
		if serr != nil {
			env.Log.Printf("rescue: shell: %v", serr)
		}
		report(env.Log, err)
		pause = shellPause(pause, env.Clock.Now().Sub(started))
		if pause > 0 {
			select {
			case <-ctx.Done():
			case <-env.Clock.After(pause):
			}
		}
	}
}

// A shell that exits at once (no console input) is restarted after a
// pause growing from 1s to 30s, so that it does not flood the console.
const (
	shortShell    = 2 * time.Second
	shellPauseMin = time.Second
	shellPauseMax = 30 * time.Second
)

// shellPause is the pause before the next shell after one that ran for
// ran, given the previous pause.
func shellPause(prev, ran time.Duration) time.Duration {
	if ran >= shortShell {
		return 0
	}
	if prev == 0 {
		return shellPauseMin
	}
	return min(2*prev, shellPauseMax)
}

// report prints the error and its hint.
func report(l *Logger, err error) {
	l.Printf("FAILED: %v", err)
	var be *Error
	if errors.As(err, &be) && be.Hint != "" {
		l.Printf("check: %s", be.Hint)
	}
}

// block waits forever, without sleeping and without letting the Go runtime
// see a deadlock (a signal subscription keeps it alive), printing the error
// again on every signal.
func block(ctx context.Context, l *Logger, err error) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sig)
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
			report(l, err)
		}
	}
}
