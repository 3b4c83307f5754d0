package boot

import (
	"flag"
	"fmt"
	"io"

	"github.com/nbdboot/nbdboot/nbdnl"
)

// KeeperMode is the argument that selects the ioctl keeper mode:
// "@nbdboot ioctl-attach [flags] /dev/nbdN", the sockets as fds 3 on.
const KeeperMode = "ioctl-attach"

// keeperFirstFD is the first inherited socket descriptor (exec.Cmd's
// ExtraFiles start after stdin, stdout and stderr).
const keeperFirstFD = 3

// maxKeeperSockets caps the sockets a keeper takes (nbdboot.connections
// allows 16).
const maxKeeperSockets = 16

// KeeperArgs is the keeper's command line after argv[0]: the part of cfg
// the ioctls set (the device, size, block size, transmission flags and
// request timeout; ClientFlags, DeadConnTimeout and BackendID have no
// ioctl) and the number of its sockets, which the keeper inherits as fds 3
// on. cfg.Index must be set. ParseKeeperArgs reads it back.
func KeeperArgs(cfg nbdnl.ConnectConfig) []string {
	return []string{KeeperMode,
		fmt.Sprintf("-size=%d", cfg.Size),
		fmt.Sprintf("-bs=%d", cfg.BlockSize),
		fmt.Sprintf("-flags=%d", cfg.ServerFlags),
		fmt.Sprintf("-timeout=%s", cfg.Timeout),
		fmt.Sprintf("-sockets=%d", len(cfg.Sockets)),
		nbdnl.DevicePath(*cfg.Index),
	}
}

// ParseKeeperArgs parses the keeper's arguments after the mode word: the
// device configuration KeeperArgs wrote (its Sockets left empty) and the
// number of inherited sockets.
func ParseKeeperArgs(args []string) (cfg nbdnl.ConnectConfig, sockets int, err error) {
	fs := flag.NewFlagSet(KeeperMode, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Uint64Var(&cfg.Size, "size", 0, "device size in bytes")
	fs.Uint64Var(&cfg.BlockSize, "bs", 0, "logical block size")
	fs.Uint64Var(&cfg.ServerFlags, "flags", 0, "transmission flags")
	fs.DurationVar(&cfg.Timeout, "timeout", 0, "request timeout")
	fs.IntVar(&sockets, "sockets", 0, "inherited sockets")
	if err := fs.Parse(args); err != nil {
		return cfg, 0, fmt.Errorf("%s: %w", KeeperMode, err)
	}
	if fs.NArg() != 1 {
		return cfg, 0, fmt.Errorf("%s: want one device /dev/nbdN, got %d arguments", KeeperMode, fs.NArg())
	}
	idx, err := nbdnl.DeviceIndex(fs.Arg(0))
	if err != nil {
		return cfg, 0, fmt.Errorf("%s: device %q: want /dev/nbdN", KeeperMode, fs.Arg(0))
	}
	cfg.Index = &idx
	if cfg.Size == 0 {
		return cfg, 0, fmt.Errorf("%s: -size: want a size above 0", KeeperMode)
	}
	if sockets < 1 || sockets > maxKeeperSockets {
		return cfg, 0, fmt.Errorf("%s: -sockets=%d: want 1 to %d", KeeperMode, sockets, maxKeeperSockets)
	}
	return cfg, sockets, nil
}
