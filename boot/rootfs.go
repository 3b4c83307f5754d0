package boot

import (
	"fmt"
	"path"
	"strings"

	"github.com/nbdboot/nbdboot/protocol"
)

// Where the root is assembled. NewRoot lives on the initramfs (not under
// /run, which moves into it); the overlay's layers live under /run so they
// move into the new root at /run/nbdboot with it.
const (
	NewRoot    = "/newroot"
	RunDir     = "/run/nbdboot"
	LowerDir   = RunDir + "/lower"
	RWDir      = RunDir + "/rw"
	StatePath  = RunDir + "/state.json"
	overlayTmp = "tmpfs"
)

// RootPlan is the mount table that assembles the root at NewRoot from the
// device: a plain mount, or with nbdboot.overlay=tmpfs the device
// read-only as the lower layer under a tmpfs upper layer.
func RootPlan(dev, fstype string, cfg *Config, readOnlyExport bool) []Action {
	if cfg.Overlay == overlayTmp {
		upper, work := path.Join(RWDir, "upper"), path.Join(RWDir, "work")
		return []Action{
			Dir{LowerDir, 0o755},
			Mount{Source: dev, Target: LowerDir, FSType: fstype, Flags: msRdonly, Data: cfg.RootFlags},
			Dir{RWDir, 0o755},
			Mount{Source: "tmpfs", Target: RWDir, FSType: "tmpfs", Data: "mode=0755"},
			Dir{upper, 0o755},
			Dir{work, 0o755},
			Dir{NewRoot, 0o755},
			Mount{Source: "overlay", Target: NewRoot, FSType: "overlay",
				Data: fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", LowerDir, upper, work)},
		}
	}
	var flags uintptr
	if !cfg.ReadWrite || readOnlyExport {
		flags = msRdonly
	}
	return []Action{
		Dir{NewRoot, 0o755},
		Mount{Source: dev, Target: NewRoot, FSType: fstype, Flags: flags, Data: cfg.RootFlags},
	}
}

// mountRoot probes (unless rootfstype= says), loads the filesystem
// modules, and applies the root plan.
func (b *booter) mountRoot(dev string, exp protocol.ExportInfo) error {
	ph := b.log.Phase("root")
	fstype := b.cfg.RootFSType
	if fstype == "" {
		f, err := b.env.FS.Open(dev)
		if err != nil {
			return fail("root", fmt.Errorf("open %s: %w", dev, err), hintMount)
		}
		fstype, err = ProbeFS(f)
		f.Close()
		if err != nil {
			return fail("root", fmt.Errorf("probe %s: %w; set rootfstype=", dev, err), hintMount)
		}
		ph.Debugf("%s holds %s", dev, fstype)
	}
	mods := []string{fstype}
	if b.cfg.Overlay == overlayTmp {
		mods = append(mods, "overlay")
	} else if b.cfg.Overlay != "" {
		return fail("root", fmt.Errorf("nbdboot.overlay=%s: unknown overlay (want tmpfs)", b.cfg.Overlay), hintCmdline)
	}
	for _, m := range mods {
		if err := b.env.Modules.Load(m); err != nil {
			ph.Printf("load module %s: %v (going on: it may be built in)", m, err)
		}
	}
	readOnlyExport := exp.Flags&protocol.FlagReadOnly != 0
	if readOnlyExport && b.cfg.ReadWrite && b.cfg.Overlay == "" {
		ph.Printf("the export is read-only: mounting %s read-only despite rw", dev)
	}
	plan := RootPlan(dev, fstype, b.cfg, readOnlyExport)
	if err := Apply(b.env.FS, plan); err != nil {
		return fail("root", err, hintMount)
	}
	ph.Done("%s", describeRoot(plan))
	return nil
}

func describeRoot(plan []Action) string {
	var parts []string
	for _, a := range plan {
		if m, ok := a.(Mount); ok {
			parts = append(parts, m.String())
		}
	}
	return strings.Join(parts, "; ")
}
