// Command nbdserve serves files and block devices over NBD.
//
//	nbdserve [-listen ADDR] [-config FILE] [-state DIR] [-control PATH] NAME=PATH[,ro][,cow[=persistent]][,grace=DURATION][,quota=SIZE][,desc=TEXT] ...
//	nbdserve overlays [-control PATH | -state DIR | -config FILE]
//	nbdserve reset [-control PATH | -state DIR | -config FILE] EXPORT [CLIENT]
//
// Exports come from the arguments and from the [[export]] tables of the
// TOML config file; flags given explicitly override the file. An export
// argument's options are comma-separated: ro (read-only), desc=TEXT, and
// cow or cow=persistent; any other key is an error.
//
// A cow export serves its file read-only as the base of one writable
// copy-on-write overlay per client: NAME/CLIENT-ID is CLIENT-ID's (nbdboot
// sends its MAC address), plain NAME the overlay of the client's IP
// address. Overlays live in the state directory (-state, default
// /var/lib/nbdserve) and are shared by all of the client's connections:
// an ephemeral one is dropped once the client has been gone for the
// grace period (grace=DURATION, default 60s), a persistent one kept until
// reset, across restarts. quota=SIZE (K, M, G suffixes) caps each
// overlay; writes past it get ENOSPC and a log line. NBD_OPT_LIST shows
// the bases only.
//
// The control socket (-control, default STATE/control.sock, mode 0600)
// serves `nbdserve overlays`, which lists overlays with their size, last
// use, connections and lifetime, and `nbdserve reset EXPORT [CLIENT]`,
// which deletes one client's overlay or all of an export's (not while
// the client is connected).
//
// A new connection of a client waits until the changes its other
// connections had begun have completed (see package server), so a write
// the kernel resends after a timeout never lands before the old copy.
//
// The config file, with every key (also in nbdserve.example.toml, which
// a test loads):
//
//	listen = ":10809"
//	state_dir = "/var/lib/nbdserve"
//	control_socket = "/var/lib/nbdserve/control.sock"
//
//	[limits]
//	handshake_timeout = "10s"   # whole negotiation
//	max_negotiating = 64        # connections still in the handshake
//	max_connections = 0         # in total; 0: no cap
//	max_inflight = 64           # requests served at once per connection
//	max_buffer_bytes = 268435456 # READ/WRITE payload bytes held, server-wide
//	reply_timeout = "60s"       # drop a client that stops reading replies
//	stall_timeout = "10s"       # drop a client whose WRITE payload stops arriving
//	shutdown_grace = "5s"       # wait for DISC after draining at shutdown
//	overlay_linger = "5s"       # an overlay stays open this long after its last connection
//	max_idle_overlays = 32      # overlays open without a connection, at most
//
//	[[export]]
//	name = "root"
//	path = "/srv/nbd/root.img"
//	readonly = true
//	description = "Debian 12 root, read-only"
//
//	[[export]]
//	name = "lab"                # clients ask for lab/CLIENT-ID
//	path = "/srv/nbd/lab.img"
//	cow = "persistent"          # or "ephemeral"
//	quota = "2G"                # per overlay; K, M, G suffixes
//
//	[[export]]
//	name = "class"              # plain "class": overlay keyed by IP
//	path = "/srv/nbd/class.img"
//	cow = "ephemeral"
//	grace = "10m"               # drop the overlay 10 min after the client left
//
//	[pxe]                       # network boot: see nbdserve.example.toml
//	interface = "eth0"
//	kernel = "/srv/nbdboot/vmlinuz"
//	initramfs = "/srv/nbdboot/initramfs.img"
//	cmdline = "ip=dhcp nbdroot=nbd://${server}/${export} rw"
//	[pxe.default]
//	export = "lab"
//
// With [pxe] (or -pxe-interface), nbdserve also boots machines from their
// network card: proxyDHCP, TFTP and HTTP on that interface (package pxe);
// -pxe-* flags set its main keys.
//
// SIGHUP re-reads the config file and the arguments and updates the
// exports: new ones appear, removed ones close once their clients are
// gone, unchanged ones keep serving; limits and -listen need a restart.
// SIGINT or SIGTERM stop accepting, let requests in flight finish (new
// ones get ESHUTDOWN), then exit.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/nbdboot/nbdboot/cow"
	"github.com/nbdboot/nbdboot/pxe"
	"github.com/nbdboot/nbdboot/server"
)

const usage = `usage: nbdserve [flags] NAME=PATH[,ro][,cow[=persistent]][,grace=DURATION][,quota=SIZE][,desc=TEXT] ...
       nbdserve overlays|reset ...   (see nbdserve overlays -h)

Serves each PATH (a regular file or a block device) as export NAME.
Options: ro (read-only), desc=TEXT (description shown by NBD_OPT_LIST),
cow[=persistent] (NAME/CLIENT-ID is CLIENT-ID's own copy-on-write overlay,
plain NAME the one of the client's IP address; kept under -state),
grace=DURATION (ephemeral overlay kept after the client left, default 60s),
quota=SIZE (bytes per overlay, K/M/G suffixes).

flags:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	var err error
	if args := os.Args[1:]; len(args) > 0 && (args[0] == "overlays" || args[0] == "reset") {
		err = runControl(ctx, args[0], args[1:], os.Stdout, os.Stderr)
	} else {
		err = run(ctx, args, os.Stderr, nil, hup)
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "nbdserve: %v\n", err)
		os.Exit(1)
	}
}

// run parses args, opens the exports and serves until ctx is done. ready,
// if not nil, is told the listening address. Each value on reload re-reads
// the config file and arguments and updates the exports.
func run(ctx context.Context, args []string, stderr io.Writer, ready func(net.Addr), reload <-chan os.Signal) error {
	set, err := parseArgs(args, stderr)
	if err != nil {
		return err
	}
	cfg, debug := set.server, set.debug
	if len(cfg.Exports) == 0 {
		return fmt.Errorf("no exports: give NAME=PATH arguments or [[export]] in -config")
	}
	var macOf atomic.Pointer[func(string) string]
	log := server.NewLogger(stderr, debug)
	if set.pxe.Enabled() {
		log = slog.New(newMACLog(log.Handler(), &macOf))
	}
	opts := []server.ExportsOption{server.WithLog(log)}
	var leases pxeLeases
	if set.pxe.Enabled() && set.pxe.DHCP != nil {
		// Overlays of MAC client IDs are pinned to the address leased.
		opts = append(opts, server.WithLeases(&leases))
	}
	if cfg.HasCOW() || cfg.StateDir != server.DefaultStateDir {
		overlays, err := cow.NewManager(cfg.Limits.OverlayConfig(cfg.StateDir, log))
		if err != nil {
			return fmt.Errorf("state directory: %w", err)
		}
		defer overlays.Close()
		opts = append(opts, server.WithOverlays(overlays))
		cln, err := server.ListenControl(cfg.ControlPath())
		if err != nil {
			return err
		}
		cctx, stopControl := context.WithCancel(ctx)
		controlDone := make(chan error, 1)
		go func() { controlDone <- server.ServeControl(cctx, cln, overlays, log) }()
		defer func() {
			stopControl()
			<-controlDone
		}()
	}
	exports, err := server.OpenExports(cfg.Exports, opts...)
	if err != nil {
		return err
	}
	defer exports.Close()
	srv, err := server.New(exports, cfg.Limits, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if set.pxe.Enabled() {
		svc, err := pxe.Start(set.pxe, pxe.Options{Log: log, NBDPort: ln.Addr().(*net.TCPAddr).Port, StateDir: cfg.StateDir})
		if err != nil {
			ln.Close()
			return err
		}
		defer svc.Close()
		f := svc.MACOf
		macOf.Store(&f)
		leases.svc.Store(svc)
	}
	for _, ec := range cfg.Exports {
		log.Info("export", "name", ec.Name, "path", ec.Path, "readonly", ec.ReadOnly)
	}
	go reloadOn(ctx, reload, args, exports, log)
	if ready != nil {
		ready(ln.Addr())
	}
	return srv.Serve(ctx, ln)
}

// settings are what nbdserve runs with.
type settings struct {
	server server.Config
	pxe    pxe.Config // [pxe] and -pxe-* flags
	debug  bool
}

// parseArgs builds the configuration: defaults, then -config, then the
// flags given explicitly, then the export arguments.
func parseArgs(args []string, stderr io.Writer) (settings, error) {
	fs := flag.NewFlagSet("nbdserve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	def := server.DefaultConfig()
	var (
		configPath   = fs.String("config", "", "TOML config `file`")
		listen       = fs.String("listen", def.Listen, "TCP `address` to listen on")
		state        = fs.String("state", def.StateDir, "state `directory` (copy-on-write overlays)")
		control      = fs.String("control", "", "control socket `path` (default: STATE/control.sock)")
		hsTimeout    = fs.Duration("handshake-timeout", def.Limits.HandshakeTimeout, "time allowed for a client's negotiation")
		maxNeg       = fs.Int("max-negotiating", def.Limits.MaxNegotiating, "connections allowed in negotiation at once")
		maxConns     = fs.Int("max-connections", def.Limits.MaxConnections, "connections allowed at once (0: no limit)")
		maxInFlight  = fs.Int("max-inflight", def.Limits.MaxInFlight, "requests served at once per connection")
		maxBuf       = fs.Int64("max-buffer-bytes", def.Limits.MaxBufferBytes, "payload bytes held at once, server-wide")
		replyTimeout = fs.Duration("reply-timeout", def.Limits.ReplyTimeout, "drop a client that takes longer to accept a reply (0: never)")
		stallTimeout = fs.Duration("stall-timeout", def.Limits.StallTimeout, "drop a client whose WRITE payload stops arriving for longer")
		grace        = fs.Duration("shutdown-grace", def.Limits.ShutdownGrace, "wait for clients' DISC after draining at shutdown")
		debug        = fs.Bool("debug", false, "log every refused request")
		pxeFlags     = addPXEFlags(fs)
	)
	if err := fs.Parse(args); err != nil {
		return settings{}, err
	}
	cfg := def
	var pc pxe.Config
	if *configPath != "" {
		var err error
		if cfg, err = server.LoadConfig(*configPath, map[string]any{"pxe": &pc}); err != nil {
			return settings{}, err
		}
	}
	fs.Visit(func(f *flag.Flag) {
		pxeFlags.apply(f.Name, &pc)
		switch f.Name {
		case "listen":
			cfg.Listen = *listen
		case "state":
			cfg.StateDir = *state
		case "control":
			cfg.ControlSocket = *control
		case "handshake-timeout":
			cfg.Limits.HandshakeTimeout = *hsTimeout
		case "max-negotiating":
			cfg.Limits.MaxNegotiating = *maxNeg
		case "max-connections":
			cfg.Limits.MaxConnections = *maxConns
		case "max-inflight":
			cfg.Limits.MaxInFlight = *maxInFlight
		case "max-buffer-bytes":
			cfg.Limits.MaxBufferBytes = *maxBuf
		case "reply-timeout":
			cfg.Limits.ReplyTimeout = *replyTimeout
		case "stall-timeout":
			cfg.Limits.StallTimeout = *stallTimeout
		case "shutdown-grace":
			cfg.Limits.ShutdownGrace = *grace
		}
	})
	for _, a := range fs.Args() {
		ec, err := server.ParseExportSpec(a)
		if err != nil {
			return settings{}, err
		}
		cfg.Exports = append(cfg.Exports, ec)
	}
	if err := cfg.Validate(); err != nil {
		return settings{}, err
	}
	return settings{server: cfg, pxe: pc, debug: *debug}, nil
}

// reloadOn updates the exports from the config file and arguments each
// time reload delivers, until ctx is done. A bad configuration is logged
// and the exports stay as they were; limits and the listen address need a
// restart.
func reloadOn(ctx context.Context, reload <-chan os.Signal, args []string, exports *server.Exports, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-reload:
		}
		set, err := parseArgs(args, io.Discard)
		cfg := set.server
		if err == nil {
			var opened, retired []string
			opened, retired, err = exports.Update(cfg.Exports)
			if err == nil {
				log.Info("reloaded", "opened", opened, "retired", retired, "exports", len(cfg.Exports))
				continue
			}
		}
		log.Error("reload failed; exports unchanged", "err", err)
	}
}
