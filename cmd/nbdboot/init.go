package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/nbdboot/nbdboot/boot"
	"github.com/nbdboot/nbdboot/nbdnl"
)

// runInit is the PID 1 path: it wires the real steps into boot.Env and
// runs the boot, which never returns (switch_root executes init; a
// failure keeps the rescue shell running).
func runInit(args []string) error {
	clock := boot.SystemClock{}
	log := boot.NewLogger(os.Stdout, clock)
	cmdline := &boot.CommandLine{}
	env := &boot.Env{
		ReadCmdline:     boot.ReadCmdline,
		Parse:           cmdline.Parse,
		ResolveRootPath: cmdline.ResolveRootPath,
		FS:              boot.OSFS{},
		Modules:         &boot.KernelModules{Log: log},
		Network:         boot.NetcfgNetwork{Log: log},
		Dialer:          boot.NewDialer(),
		Negotiate:       boot.Negotiate,
		Device:          boot.NetlinkDevice{Sys: nbdnl.DefaultSys()},
		Switch:          boot.RootSwitcher{Log: log},
		Supervisor:      boot.ExecSupervisor{Console: os.Stdout, Log: log},
		Shell:           boot.ConsoleShell{Candidates: boot.ShellCandidates, Log: log},
		Clock:           clock,
		Log:             log,
		Console:         boot.OpenConsole,
		WaitRandom:      boot.WaitRandom,
		Uptime:          boot.Uptime,
	}
	boot.Main(context.Background(), env)
	return errors.New("init: the boot returned") // unreachable: Main never returns
}

// The resident supervisor is this binary re-executed by PID 1 as
// "@nbdboot supervise STATE" (argv[0] marks it for systemd). It is picked
// out here, before main's dispatch, which knows only the admin commands.
func init() {
	if len(os.Args) >= 2 && os.Args[0] == boot.SupervisorArgv0 && os.Args[1] == boot.SupervisorMode {
		if err := runSupervise(os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "nbdboot: supervisor: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// runSupervise stays resident for the root device named in the state file.
func runSupervise(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: %s %s STATE", boot.SupervisorArgv0, boot.SupervisorMode)
	}
	st, err := boot.ReadState(args[0])
	if err != nil {
		return err
	}
	clock := boot.SystemClock{}
	log := boot.NewLogger(os.Stdout, clock)
	if up, err := boot.Uptime(); err == nil && st.InitStart > 0 {
		log = boot.NewLoggerSince(os.Stdout, clock, clock.Now().Add(st.InitStart-up))
	}
	log.SetDebug(st.Debug)
	// The root's storage must not be the OOM killer's first victim.
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("-1000"), 0); err != nil {
		log.Printf("supervisor: oom_score_adj: %v", err)
	}
	s := &boot.Supervisor{State: st, Log: log, Watch: boot.NetlinkWatch}
	return s.Run(context.Background())
}
