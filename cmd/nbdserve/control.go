package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/nbdboot/nbdboot/internal/printable"
	"github.com/nbdboot/nbdboot/server"
)

const controlUsage = `usage: nbdserve overlays [-control PATH | -state DIR | -config FILE]
       nbdserve reset [-control PATH | -state DIR | -config FILE] EXPORT [CLIENT]

overlays lists the copy-on-write overlays of a running nbdserve; reset
deletes CLIENT's overlay on EXPORT, or all of EXPORT's without CLIENT.
Overlays with a client connected are not reset.

flags:
`

// runControl runs the overlays and reset subcommands against the control
// socket of a running server.
func runControl(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("nbdserve "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, controlUsage)
		fs.PrintDefaults()
	}
	var (
		control    = fs.String("control", "", "control socket `path` (default: STATE/control.sock)")
		state      = fs.String("state", server.DefaultStateDir, "the server's state `directory`")
		configPath = fs.String("config", "", "the server's TOML config `file`, for state_dir and control_socket")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := server.DefaultConfig()
	if *configPath != "" {
		var err error
		if cfg, err = server.LoadConfig(*configPath, nil); err != nil {
			return err
		}
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "control":
			cfg.ControlSocket = *control
		case "state":
			cfg.StateDir = *state
		}
	})
	req := server.ControlRequest{Op: "list"}
	switch {
	case cmd == "overlays" && fs.NArg() != 0:
		return fmt.Errorf("overlays: unexpected argument %q", fs.Arg(0))
	case cmd == "reset" && (fs.NArg() < 1 || fs.NArg() > 2):
		return fmt.Errorf("reset: want EXPORT [CLIENT]")
	case cmd == "reset":
		req = server.ControlRequest{Op: "reset", Export: fs.Arg(0), Client: fs.Arg(1)}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	reply, err := server.ControlCall(ctx, cfg.ControlPath(), req)
	if cmd == "reset" {
		fmt.Fprintf(stdout, "reset %d overlays\n", reply.Reset)
		return err
	}
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "EXPORT\tCLIENT\tSIZE\tLAST USE\tCONNECTIONS\tLIFETIME")
	for _, o := range reply.Overlays {
		life := "ephemeral"
		if o.Persistent {
			life = "persistent"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\n", printable.Name(o.Export), printable.Name(o.Client), o.Size, o.LastUse.Format(time.RFC3339), o.Connections, life)
	}
	return tw.Flush()
}
