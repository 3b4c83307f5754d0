package boot

import (
	"sync"

	"github.com/nbdboot/nbdboot/kmod"
)

// KernelModules adapts package kmod; the loader is created on first use,
// once /proc is mounted.
type KernelModules struct {
	Options kmod.Options
	Sysfs   string // "" means /sys

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
	return l.LoadForDevices(sys)
}
