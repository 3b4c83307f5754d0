package server

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/nbdboot/nbdboot/cow"
)

// Config is nbdserve's whole configuration: from the defaults, then the
// TOML file, then command-line flags and export arguments.
type Config struct {
	// Listen is the TCP address to serve on.
	Listen string `toml:"listen"`
	// StateDir holds the copy-on-write overlays, STATE/EXPORT/CLIENT/.
	StateDir string `toml:"state_dir"`
	// ControlSocket is the unix socket of the control interface (list
	// and reset overlays); empty means STATE/control.sock.
	ControlSocket string `toml:"control_socket"`
	Limits        Limits `toml:"limits"`
	// Exports, in the order given; names are unique.
	Exports []ExportConfig `toml:"export"`
}

// Limits bound what clients can make the server hold.
type Limits struct {
	// HandshakeTimeout bounds the whole negotiation phase.
	HandshakeTimeout time.Duration `toml:"handshake_timeout"`
	// MaxNegotiating caps connections still in the handshake; more are
	// closed at once (CVE-2024-7409).
	MaxNegotiating int `toml:"max_negotiating"`
	// MaxConnections caps connections in total (0: no cap).
	MaxConnections int `toml:"max_connections"`
	// MaxInFlight caps requests being served per connection.
	MaxInFlight int `toml:"max_inflight"`
	// MaxBufferBytes caps READ and WRITE payload bytes held server-wide.
	MaxBufferBytes int64 `toml:"max_buffer_bytes"`
	// ReplyTimeout bounds the time to send one reply: a client that stops
	// reading is dropped instead of pinning its buffers (0: no bound).
	ReplyTimeout time.Duration `toml:"reply_timeout"`
	// StallTimeout bounds the wait for each part of a WRITE's payload
	// once its header is in: a client that stops sending it is dropped.
	StallTimeout time.Duration `toml:"stall_timeout"`
	// ShutdownGrace is how long a drained connection waits for the
	// client's DISC after shutdown began before it is closed.
	ShutdownGrace time.Duration `toml:"shutdown_grace"`
	// OverlayLinger is how long a copy-on-write overlay stays open after
	// its client's last connection, so that a reconnect (a reboot, a
	// dropped link) finds it open; 0 closes it at once.
	OverlayLinger time.Duration `toml:"overlay_linger"`
	// MaxIdleOverlays caps the overlays left open without a connection
	// (past it the longest idle is closed at once), and the data file
	// mappings kept for closed overlays.
	MaxIdleOverlays int `toml:"max_idle_overlays"`
}

// OverlayConfig is the overlay Manager's configuration for the state
// directory dir under these limits.
func (l Limits) OverlayConfig(dir string, log *slog.Logger) cow.Config {
	linger := l.OverlayLinger
	if linger == 0 {
		linger = -1 // the Manager's "close at once"
	}
	return cow.Config{Dir: dir, Log: log, Linger: linger, MaxIdleOpen: l.MaxIdleOverlays}
}

// DefaultStateDir is where overlays live unless configured otherwise.
const DefaultStateDir = "/var/lib/nbdserve"

// ControlPath is the control socket's path: ControlSocket, or
// control.sock in the state directory.
func (c Config) ControlPath() string {
	if c.ControlSocket != "" {
		return c.ControlSocket
	}
	return filepath.Join(c.StateDir, "control.sock")
}

// HasCOW reports whether an export serves copy-on-write overlays.
func (c Config) HasCOW() bool {
	for _, ec := range c.Exports {
		if ec.COW != "" {
			return true
		}
	}
	return false
}

// DefaultConfig returns the configuration used when nothing is given.
func DefaultConfig() Config {
	return Config{Listen: ":10809", StateDir: DefaultStateDir, Limits: DefaultLimits()}
}

// DefaultLimits returns the default limits.
func DefaultLimits() Limits {
	return Limits{
		HandshakeTimeout: 10 * time.Second,
		MaxNegotiating:   64,
		MaxInFlight:      64,
		MaxBufferBytes:   256 << 20,
		ReplyTimeout:     60 * time.Second,
		StallTimeout:     10 * time.Second,
		ShutdownGrace:    5 * time.Second,
		OverlayLinger:    cow.DefaultLinger,
		MaxIdleOverlays:  cow.DefaultMaxIdleOpen,
	}
}

// LoadConfig reads a TOML config file over the defaults. Each entry of
// sections decodes the top-level table of its name into its value (a
// pointer), for the parts of the file other packages own (nbdserve's
// [pxe]). Unknown keys, there or here, are an error naming them.
func LoadConfig(path string, sections map[string]any) (Config, error) {
	cfg := DefaultConfig()
	md, err := toml.DecodeFile(path, &cfg)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	var und []toml.Key
	for _, k := range md.Undecoded() {
		if _, ok := sections[k[0]]; !ok {
			und = append(und, k)
		}
	}
	if len(sections) > 0 {
		var raw map[string]toml.Primitive
		smd, err := toml.DecodeFile(path, &raw)
		if err != nil {
			return Config{}, fmt.Errorf("config %s: %w", path, err)
		}
		for name, v := range sections {
			if p, ok := raw[name]; ok {
				if err := smd.PrimitiveDecode(p, v); err != nil {
					return Config{}, fmt.Errorf("config %s: [%s]: %w", path, name, err)
				}
			}
		}
		for _, k := range smd.Undecoded() {
			if _, ok := sections[k[0]]; ok && len(k) > 1 {
				und = append(und, k)
			}
		}
	}
	if len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return Config{}, fmt.Errorf("config %s: unknown key %s", path, strings.Join(keys, ", "))
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Validate checks the limits and every export, and that names are unique.
func (c Config) Validate() error {
	if c.Listen == "" {
		return fmt.Errorf("listen: empty address")
	}
	if c.StateDir == "" && c.HasCOW() {
		return fmt.Errorf("state_dir: empty, but cow exports need one")
	}
	if err := c.Limits.Validate(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, ec := range c.Exports {
		if err := ec.Validate(); err != nil {
			return fmt.Errorf("export #%d: %w", i+1, err)
		}
		if seen[ec.Name] {
			return fmt.Errorf("export %q: defined twice", ec.Name)
		}
		seen[ec.Name] = true
	}
	return nil
}

// Validate checks that every limit is usable.
func (l Limits) Validate() error {
	switch {
	case l.HandshakeTimeout <= 0:
		return fmt.Errorf("limits.handshake_timeout: %v, want > 0", l.HandshakeTimeout)
	case l.MaxNegotiating < 1:
		return fmt.Errorf("limits.max_negotiating: %d, want >= 1", l.MaxNegotiating)
	case l.MaxConnections < 0:
		return fmt.Errorf("limits.max_connections: %d, want >= 0", l.MaxConnections)
	case l.MaxInFlight < 1:
		return fmt.Errorf("limits.max_inflight: %d, want >= 1", l.MaxInFlight)
	case l.MaxBufferBytes < 1<<20:
		return fmt.Errorf("limits.max_buffer_bytes: %d, want >= 1048576", l.MaxBufferBytes)
	case l.ReplyTimeout < 0:
		return fmt.Errorf("limits.reply_timeout: %v, want >= 0", l.ReplyTimeout)
	case l.StallTimeout <= 0:
		return fmt.Errorf("limits.stall_timeout: %v, want > 0", l.StallTimeout)
	case l.ShutdownGrace < 0:
		return fmt.Errorf("limits.shutdown_grace: %v, want >= 0", l.ShutdownGrace)
	case l.OverlayLinger < 0:
		return fmt.Errorf("limits.overlay_linger: %v, want >= 0", l.OverlayLinger)
	case l.MaxIdleOverlays < 1:
		return fmt.Errorf("limits.max_idle_overlays: %d, want >= 1", l.MaxIdleOverlays)
	}
	return nil
}
