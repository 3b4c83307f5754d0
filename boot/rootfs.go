package boot

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"syscall"

	"github.com/nbdboot/nbdboot/bootcfg"
	"github.com/nbdboot/nbdboot/protocol"
)

// Where the root is assembled. NewRoot lives on the initramfs (not under
// /run, which moves into it); the overlay's layers live under /run so they
// move into the new root at /run/nbdboot with it.
const (
	NewRoot   = "/newroot"
	RunDir    = "/run/nbdboot"
	LowerDir  = RunDir + "/lower"
	RWDir     = RunDir + "/rw"
	StatePath = RunDir + "/state.json"
)

// RootPlan is the mount table that assembles the root at NewRoot from the
// device: a plain mount, or with nbdboot.overlay=tmpfs the device
// read-only as the lower layer under a tmpfs upper layer.
func RootPlan(dev, fstype string, overlay bootcfg.Overlay, root bootcfg.Boot, readOnlyExport bool) []Action {
	if overlay == bootcfg.OverlayTmpfs {
		upper, work := path.Join(RWDir, "upper"), path.Join(RWDir, "work")
		return []Action{
			Dir{LowerDir, 0o755},
			Mount{Source: dev, Target: LowerDir, FSType: fstype, Flags: msRdonly, Data: root.Flags},
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
	if root.ReadOnly || readOnlyExport {
		flags = msRdonly
	}
	return []Action{
		Dir{NewRoot, 0o755},
		Mount{Source: dev, Target: NewRoot, FSType: fstype, Flags: flags, Data: root.Flags},
	}
}

// mountRoot probes (unless rootfstype= says), loads the filesystem
// modules, and applies the root plan.
func (b *booter) mountRoot(dev string, exp protocol.ExportInfo) error {
	ph := b.log.Phase("root")
	fstype := b.root.FSType
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
	if b.cfg.Overlay == bootcfg.OverlayTmpfs {
		mods = append(mods, "overlay")
	} else if b.cfg.Overlay != bootcfg.OverlayNone {
		return fail("root", fmt.Errorf("nbdboot.overlay=%s: unknown overlay (want tmpfs)", b.cfg.Overlay), hintCmdline)
	}
	for _, m := range mods {
		if err := b.env.Modules.Load(m); err != nil {
			ph.Printf("load module %s: %v (going on: it may be built in)", m, err)
		}
	}
	readOnlyExport := exp.Flags&protocol.FlagReadOnly != 0
	if readOnlyExport && !b.root.ReadOnly && b.cfg.Overlay == bootcfg.OverlayNone {
		ph.Printf("the export is read-only: mounting %s read-only despite rw", dev)
	}
	plan := RootPlan(dev, fstype, b.cfg.Overlay, b.root, readOnlyExport)
	err := Apply(b.env.FS, plan)
	if err != nil && journalNeedsRecovery(err, dev, fstype, plan) {
		ph.Printf("%s: the %s journal needs recovery, which the read-only device cannot take: mounting it without replaying the journal (noload); "+
			"what only the journal holds (the last writes before a crash) is not seen. Replay it on the server (e2fsck -p on the image, or one read-write boot) to see it", dev, fstype)
		plan = withNoload(plan, dev)
		if err2 := Apply(b.env.FS, plan); err2 != nil {
			return fail("root", fmt.Errorf("%w; again without replaying the journal (noload): %w", err, err2), hintJournal)
		}
		err = nil
	}
	if err != nil {
		return fail("root", err, hintMount)
	}
	ph.Done("%s", describeRoot(plan))
	return nil
}

// journalNeedsRecovery reports whether err is ext3/ext4 refusing a
// read-only mount of dev because its journal needs recovery and the device
// is read-only (EROFS; the kernel logs "recovery required on readonly
// filesystem ... write access unavailable"), as an export served read-only
// after a crashed read-write boot is. Such a root is mounted with noload
// rather than always: a clean journal needs nothing, and one that can be
// replayed (a writable device) gives a consistent view when it is.
func journalNeedsRecovery(err error, dev, fstype string, plan []Action) bool {
	if !errors.Is(err, syscall.EROFS) || fstype != "ext4" && fstype != "ext3" {
		return false
	}
	for _, a := range plan {
		if m, ok := a.(Mount); ok && m.Source == dev {
			return m.Flags&msRdonly != 0 && !hasOption(m.Data, "noload")
		}
	}
	return false
}

// withNoload returns plan with noload added to the mount of dev.
func withNoload(plan []Action, dev string) []Action {
	out := append([]Action(nil), plan...)
	for i, a := range out {
		if m, ok := a.(Mount); ok && m.Source == dev {
			m.Data = strings.TrimPrefix(m.Data+",noload", ",")
			out[i] = m
		}
	}
	return out
}

// hasOption reports whether the comma-separated mount options hold opt.
func hasOption(opts, opt string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if o == opt {
			return true
		}
	}
	return false
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
