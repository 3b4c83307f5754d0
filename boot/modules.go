package boot

import (
	"fmt"
	"strings"
	"sync"

	"github.com/nbdboot/nbdboot/bootcfg"
	"github.com/nbdboot/nbdboot/kmod"
)

// KernelModules adapts package kmod; the loader is created on first use,
// once /proc is mounted.
type KernelModules struct {
	Options kmod.Options
	Sysfs   string  // "" means /sys
	Log     *Logger // nil: no per-module timings under nbdboot.debug

	once   sync.Once
	loader *kmod.Loader
	err    error
}

func (m *KernelModules) get() (*kmod.Loader, error) {
	m.once.Do(func() { m.loader, m.err = kmod.New(m.Options) })
	return m.loader, m.err
}

// Load loads a module and its dependencies; built-in counts as loaded.
func (m *KernelModules) Load(name string) error {
	l, err := m.get()
	if err != nil {
		return err
	}
	n := len(l.Timings())
	err = l.Load(name, "")
	m.debugTimings(l.Timings()[n:])
	return err
}

// LoadForDevices loads the drivers of the devices present.
func (m *KernelModules) LoadForDevices() ([]string, error) {
	l, err := m.get()
	if err != nil {
		return nil, err
	}
	sys := m.Sysfs
	if sys == "" {
		sys = "/sys"
	}
	n := len(l.Timings())
	mods, err := l.LoadForDevices(sys)
	m.debugTimings(l.Timings()[n:])
	return mods, err
}

// debugTimings logs insertions under nbdboot.debug.
func (m *KernelModules) debugTimings(ts []kmod.Timing) {
	if m.Log == nil {
		return
	}
	for _, t := range ts {
		if t.Err != nil {
			m.Log.Debugf("modules: %s (%s): %v", t.Module, t.File, t.Err)
			continue
		}
		m.Log.Debugf("modules: %s %.3fs", t.Module, t.Took.Seconds())
	}
}

// lateModules loads, in the background while the network comes up and the
// client connects, the modules needed only after that: nbd before the
// attach, the root's filesystem (and overlay) before the mount. Kernel
// module insertion is CPU work in the guest, the network mostly waiting.
type lateModules struct {
	nbd  chan struct{} // closed once nbd is loaded or failed
	all  chan struct{} // closed once every module was tried
	err  error         // nbd's failure, an *Error; read after nbd is closed
	mods []string
}

// lateFSGuess is preloaded when rootfstype= is not given: the root's type
// is known only once the device is attached, and ext4 is the common case
// (another filesystem's module is loaded at mount time as before).
const lateFSGuess = "ext4"

// startLateModules starts loading nbd and the root's filesystem modules;
// the modules are chosen from the command line now (with nbdroot=dhcp the
// root-path may name another FSTYPE later).
func (b *booter) startLateModules() *lateModules {
	fs := b.cfg.RootFSType
	if fs == "" {
		fs = lateFSGuess
	}
	lm := &lateModules{nbd: make(chan struct{}), all: make(chan struct{}), mods: []string{"nbd", fs}}
	if b.cfg.Overlay == bootcfg.OverlayTmpfs {
		lm.mods = append(lm.mods, "overlay")
	}
	go lm.run(b.env.Modules, b.log)
	return lm
}

func (lm *lateModules) run(m Modules, log *Logger) {
	defer close(lm.all)
	ph := log.Phase("late_modules")
	if err := m.Load("nbd"); err != nil {
		lm.err = fail("modules", fmt.Errorf("load nbd: %w", err), hintModules)
	}
	close(lm.nbd)
	if lm.err != nil {
		return
	}
	for _, name := range lm.mods[1:] {
		if err := m.Load(name); err != nil {
			// mountRoot loads the filesystem again and reports it.
			ph.Debugf("%s: %v", name, err)
		}
	}
	ph.Done("%s (in the background)", strings.Join(lm.mods, " "))
}

// waitNBD waits for nbd and returns its failure.
func (lm *lateModules) waitNBD() error {
	<-lm.nbd
	return lm.err
}

// wait waits for every late module.
func (lm *lateModules) wait() { <-lm.all }
