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
	clock := boot.SystemClock()
	log := boot.NewLogger(os.Stdout, clock)
	env := &boot.Env{
		ReadCmdline: boot.ReadCmdline,
		Parse:       boot.ParseCommandLine,
		FS:          boot.OSFS{},
		Modules:     &boot.KernelModules{Log: log},
		Network:     boot.NetcfgNetwork{Log: log},
		Dialer:      boot.NewDialer(),
		Negotiate:   boot.Negotiate,
		Device:      boot.NetlinkDevice{Sys: nbdnl.DefaultSys()},
		Switch:      boot.RootSwitcher{Log: log},
		Supervisor:  boot.ExecSupervisor{Console: os.Stdout, Log: log},
		Shell:       boot.ConsoleShell{Candidates: boot.ShellCandidates, Log: log},
		Clock:       clock,
		Log:         log,
		Console:     boot.OpenConsole,
		Uptime:      boot.Uptime,
	}
	boot.Main(context.Background(), env)
	return errors.New("init: the boot returned") // unreachable: Main never returns
}

// runSupervise is the resident supervisor: this binary re-executed by
// PID 1 as "@nbdboot supervise STATE" (argv[0] marks it for systemd).
func runSupervise(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: %s %s STATE", boot.SupervisorArgv0, boot.SupervisorMode)
	}
	st, err := boot.ReadState(args[0])
	if err != nil {
		return err
	}
	return boot.Resident(context.Background(), st, os.Stdout)
}
