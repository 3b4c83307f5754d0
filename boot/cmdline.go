package boot

import (
	"github.com/nbdboot/nbdboot/bootcfg"
)

// CommandLine adapts package bootcfg to Env.Parse and Env.ResolveRootPath:
// it keeps the parsed command line to merge the DHCP root-path into later.
type CommandLine struct {
	parsed *bootcfg.Config
}

// Parse parses and validates the command line. On error the Config
// returned (when not nil) still carries the shell settings.
func (c *CommandLine) Parse(line string) (*Config, error) {
	bc, err := bootcfg.Parse(line)
	if bc == nil {
		return nil, err
	}
	if err == nil {
		err = bc.Validate()
	}
	c.parsed = bc
	cfg := fromBootcfg(bc)
	if err != nil || bc.NBD == nil {
		return cfg, err // nbdroot=dhcp resolves once the network is up
	}
	return c.resolve(*bc.NBD)
}

// ResolveRootPath parses a DHCP root-path and merges it with the command
// line.
func (c *CommandLine) ResolveRootPath(rootPath string) (*Config, error) {
	t, err := bootcfg.ParseNBDRoot(rootPath)
	if err != nil {
		return nil, err
	}
	return c.resolve(t)
}

func (c *CommandLine) resolve(t bootcfg.Target) (*Config, error) {
	b, err := c.parsed.Resolve(t)
	if err != nil {
		return nil, err
	}
	cfg := fromBootcfg(c.parsed)
	for _, s := range t.Servers {
		cfg.Servers = append(cfg.Servers, bootcfg.Address{Server: s, Export: t.Export})
	}
	cfg.Root = b.Root
	cfg.RootFSType = b.FSType
	cfg.RootFlags = b.Flags
	cfg.ReadWrite = !b.ReadOnly
	cfg.Connections = b.Connections
	cfg.Timeout = b.RequestTimeout
	cfg.DeadConn = b.DeadConnTimeout
	cfg.BlockSize = b.BlockSize
	return cfg, nil
}

// fromBootcfg takes the settings that do not depend on the target.
func fromBootcfg(bc *bootcfg.Config) *Config {
	cfg := &Config{
		FromDHCP:    bc.FromDHCP,
		IP:          bc.IP,
		Root:        bc.RootDevice,
		RootFSType:  bc.RootFSType,
		RootFlags:   bc.RootFlags,
		ReadWrite:   !bc.ReadOnly,
		Init:        bc.Init,
		InitArgs:    bc.InitArgs,
		Connections: bc.Connections,
		Timeout:     bc.RequestTimeout,
		DeadConn:    bc.DeadConnTimeout,
		Retry:       bc.Retry,
		Debug:       bc.Debug,
		Overlay:     string(bc.Overlay),
		AttachIoctl: bc.Attach == bootcfg.AttachIoctl,
		ClientID:    bc.ClientID,
		Modules:     bc.Modules,
		Shell:       bc.Shell,
	}
	for _, p := range bc.Breaks {
		cfg.Breaks = append(cfg.Breaks, string(p))
	}
	return cfg
}
