package boot

import (
	"sync"

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
	return l.Load(name, "")
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
	mods, err := l.LoadForDevices(sys)
	m.debugTimings(l)
	return mods, err
}

// debugTimings logs each insertion under nbdboot.debug.
func (m *KernelModules) debugTimings(l *kmod.Loader) {
	if m.Log == nil {
		return
	}
	for _, t := range l.Timings() {
		if t.Err != nil {
			m.Log.Debugf("modules: %s (%s): %v", t.Module, t.File, t.Err)
			continue
		}
		m.Log.Debugf("modules: %s %.3fs", t.Module, t.Took.Seconds())
	}
}
