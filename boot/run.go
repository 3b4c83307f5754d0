package boot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nbdboot/nbdboot/bootcfg"
	"github.com/nbdboot/nbdboot/nbdnl"
	"github.com/nbdboot/nbdboot/protocol"
)

// booter carries one boot's state between its phases.
type booter struct {
	env *Env
	log *Logger
	cfg *bootcfg.Config // the command line
	// root is the command line merged with the target (resolveRoot): from
	// nbdroot=, or for nbdroot=dhcp from the DHCP root-path.
	root bootcfg.Boot
	net  NetInfo
}

// Run performs the boot sequence: pseudo filesystems, command line,
// modules, network, target, connect, attach, partitions, root mount,
// rd.break, supervisor and switch_root. It returns only on failure (the
// Switcher executes init); the error is an *Error naming the phase.
// cfg is returned too when the command line parsed, for Main's decisions.
func Run(ctx context.Context, env *Env) (*bootcfg.Config, error) {
	b := &booter{env: env, log: env.Log}
	if err := b.setup(); err != nil {
		return b.cfg, err
	}
	if err := b.loadModules(); err != nil {
		return b.cfg, err
	}
	late := b.startLateModules()
	err := b.afterModules(ctx, late)
	late.wait() // a failed boot's rescue shell starts with the modules settled
	return b.cfg, err
}

// afterModules brings up the network and the root; it returns only on
// failure.
func (b *booter) afterModules(ctx context.Context, late *lateModules) error {
	if err := b.network(ctx); err != nil {
		return err
	}
	if err := b.resolveRoot(); err != nil {
		return err
	}
	if b.cfg.BreakAt(bootcfg.BreakPreMount) {
		late.wait() // the shell finds nbd loaded
	}
	b.breakPoint(ctx, bootcfg.BreakPreMount, "the network is up, the device not attached yet")
	return b.boot(ctx, late)
}

// breakPoint runs a shell when rd.break asked for one here; exiting the
// shell continues the boot.
func (b *booter) breakPoint(ctx context.Context, point bootcfg.BreakPoint, what string) {
	if !b.cfg.BreakAt(point) {
		return
	}
	b.log.Printf("rd.break=%s: %s; exit the shell to continue booting", point, what)
	if err := b.env.Shell.Run(ctx, "rd.break="+string(point)); err != nil {
		b.log.Printf("rd.break=%s: %v; continuing", point, err)
	}
}

// boot connects, attaches, mounts and switches.
func (b *booter) boot(ctx context.Context, late *lateModules) error {
	s, err := b.connect(ctx, b.root.Addresses())
	if err != nil {
		return err
	}
	exp, target, conns := s.Export, s.Target, len(s.Conns)
	if err := late.waitNBD(); err != nil {
		s.Close()
		return err
	}
	att, err := b.attach(ctx, s)
	if err != nil {
		return err
	}
	idx := att.Index
	dev, err := b.rootDevice(ctx, idx)
	if err != nil {
		return err
	}
	late.wait()
	b.breakPoint(ctx, bootcfg.BreakMount, dev+" is attached, the root not mounted yet")
	if err := b.mountRoot(dev, exp); err != nil {
		return err
	}
	b.breakPoint(ctx, bootcfg.BreakPrePivot, "the root is mounted at "+NewRoot)
	st := b.state(idx, target, exp, conns, att.BlockSize)
	st.Ioctl = att.Ioctl
	return b.switchRoot(st)
}

// setup mounts the pseudo filesystems and parses the command line.
func (b *booter) setup() error {
	if err := Apply(b.env.FS, EarlyMounts); err != nil {
		return fail("mounts", err, "check that the kernel has proc, sysfs, devtmpfs and tmpfs")
	}
	if b.env.Console != nil {
		if err := b.env.Console(); err != nil {
			b.log.Printf("console: %v", err)
		}
	}
	line, err := b.env.ReadCmdline()
	if err != nil {
		return fail("cmdline", fmt.Errorf("read /proc/cmdline: %w", err), hintCmdline)
	}
	b.log.Printf("cmdline: %s", strings.TrimSpace(line))
	cfg, err := b.env.Parse(line)
	b.cfg = cfg // a partial Config still says whether a shell is wanted
	if err != nil {
		return fail("cmdline", err, hintCmdline)
	}
	b.log.SetDebug(cfg.Debug)
	if cfg.NBD == nil && !cfg.FromDHCP {
		return fail("cmdline", fmt.Errorf("no NBD root given: set nbdroot=HOST,PORT,EXPORT, root=nbd:HOST:PORT:EXPORT or nbdroot=dhcp"), hintCmdline)
	}
	return nil
}

// loadModules loads the drivers of the devices present and the extra
// modules of nbdboot.modules (which may be network drivers); nbd and the
// filesystems follow in the background (startLateModules).
func (b *booter) loadModules() error {
	ph := b.log.Phase("modules")
	loaded, err := b.env.Modules.LoadForDevices()
	if err != nil {
		ph.Printf("device drivers: %v (going on)", err)
	}
	for _, m := range b.cfg.Modules {
		if err := b.env.Modules.Load(m); err != nil {
			return fail("modules", fmt.Errorf("load %s (nbdboot.modules): %w", m, err), hintModules)
		}
		loaded = append(loaded, m)
	}
	ph.Done("%s", strings.Join(loaded, " "))
	return nil
}

// network brings the network up, retrying until the deadline.
func (b *booter) network(ctx context.Context) error {
	ph := b.log.Phase("network")
	r := newRetrier(b.env.Clock, retry(b.cfg))
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, r.left())
		ni, err := b.env.Network.Up(actx, b.cfg.IP)
		cancel()
		var final *Error
		if errors.As(err, &final) {
			return err // a step's own verdict, such as a malformed ip=
		}
		if err == nil {
			b.net = ni
			ph.Done("%s %s via %s", ni.Interface, strings.Join(ni.Addrs, " "), ni.Method)
			if ni.Gateway != "" || ni.MAC != "" {
				ph.Debugf("mac %s gateway %s root-path %q", ni.MAC, ni.Gateway, ni.RootPath)
			}
			return nil
		}
		ph.Printf("attempt %d: %v", attempt, err)
		if !r.next(ctx) {
			return fail("network", fmt.Errorf("no network within %s: %w", retry(b.cfg), err), hintNetwork)
		}
	}
}

// resolveRoot merges the command line with the target: nbdroot='s, or
// for nbdroot=dhcp the one the DHCP root-path names.
func (b *booter) resolveRoot() error {
	if !b.cfg.FromDHCP {
		root, err := b.cfg.Resolve(*b.cfg.NBD)
		if err != nil {
			return fail("cmdline", err, hintCmdline)
		}
		b.root = root
		return nil
	}
	if b.net.RootPath == "" {
		return fail("dhcp", fmt.Errorf("nbdroot=dhcp: the DHCP answer on %s has no root-path", b.net.Interface), hintRootPath)
	}
	t, err := bootcfg.ParseNBDRoot(b.net.RootPath)
	if err == nil {
		b.root, err = b.cfg.Resolve(t)
	}
	if err != nil {
		return fail("dhcp", fmt.Errorf("DHCP root-path %q: %w", b.net.RootPath, err), hintRootPath)
	}
	b.log.Printf("dhcp: root-path %q: %s", b.net.RootPath, b.root.Addresses()[0])
	return nil
}

func (b *booter) state(idx uint32, t bootcfg.Address, exp protocol.ExportInfo, conns int, blockSize uint64) State {
	dhcpAddr := ""
	if b.net.Method == "dhcp" && len(b.net.Addrs) > 0 {
		dhcpAddr = b.net.Addrs[0]
	}
	return State{
		Version: StateVersion, Index: idx, Device: nbdnl.DevicePath(idx),
		Servers: b.root.Addresses(), Target: pinVersion(t, exp.Name), BackendID: t.String(), ClientID: b.cfg.ClientID,
		Connections: conns, Size: exp.Size, BlockSize: blockSize,
		ServerFlags: exp.Flags, Timeout: b.root.RequestTimeout, DeadConn: b.root.DeadConnTimeout,
		Interface: b.net.Interface, IfIndex: b.net.Index, Overlay: string(b.cfg.Overlay), DHCPAddr: dhcpAddr, Debug: b.cfg.Debug, InitStart: b.initStart(),
	}
}

// initStart is the kernel uptime when the logger started (0 if unknown).
func (b *booter) initStart() time.Duration {
	if b.env.Uptime == nil {
		return 0
	}
	up, err := b.env.Uptime()
	if err != nil {
		return 0
	}
	return up - b.log.Since()
}

// initEnv is the environment init gets: what the kernel gives, no more.
var initEnv = []string{
	"HOME=/",
	"TERM=linux",
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
}

// switchRoot writes the state file, then switches; the supervisor starts
// inside the new root before init runs.
func (b *booter) switchRoot(st State) error {
	data, err := MarshalState(st)
	if err != nil {
		return fail("switch_root", err, hintSwitch)
	}
	if err := b.env.FS.MkdirAll(RunDir, 0o755); err != nil {
		return fail("switch_root", fmt.Errorf("mkdir %s: %w", RunDir, err), hintSwitch)
	}
	if err := b.env.FS.WriteFile(StatePath, data, 0o600); err != nil {
		return fail("switch_root", fmt.Errorf("write %s: %w", StatePath, err), hintSwitch)
	}
	total := b.log.Since()
	up := ""
	if b.env.Uptime != nil {
		if u, err := b.env.Uptime(); err == nil {
			up = fmt.Sprintf(", kernel uptime %.3fs", u.Seconds())
		}
	}
	b.log.Printf("switch_root: %s to %s on %s; %.3fs from /init to switch_root%s",
		NewRoot, st.Target, st.Device, total.Seconds(), up)
	spec := SwitchSpec{
		NewRoot: NewRoot,
		Init:    b.cfg.Init,
		Args:    b.cfg.InitArgs,
		Env:     append([]string(nil), initEnv...),
		AfterChroot: func() error {
			if err := b.env.Supervisor.Start(StatePath); err != nil {
				b.log.Printf("supervisor: not started: %v (the root stays attached, without reconnects)", err)
			}
			return nil
		},
	}
	if err := b.env.Switch.Switch(spec); err != nil {
		return fail("switch_root", err, hintSwitch)
	}
	return fail("switch_root", fmt.Errorf("switch returned without executing init"), hintSwitch)
}
