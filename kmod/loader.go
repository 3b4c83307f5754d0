package kmod

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNotFound is wrapped by Load when nothing provides a module.
var ErrNotFound = errors.New("module not found")

// Options configure a Loader. Zero values pick the running system's.
type Options struct {
	// Dir is the module tree; default /lib/modules/$(uname -r).
	Dir string
	// ProcModules lists the modules already loaded; default /proc/modules.
	// A missing file means none.
	ProcModules string
	// Inserter loads a module; default Syscalls.
	Inserter Inserter
	// Now is the clock for Timings; default time.Now.
	Now func() time.Time
	// Buses limits LoadForDevices to these /sys/bus entries (like "pci",
	// "virtio"); empty walks every bus.
	Buses []string
}

// Timing records one module insertion, for the boot log.
type Timing struct {
	Module string
	File   string
	Took   time.Duration
	Err    error // nil on success (EEXIST counts as success)
}

// Loader loads modules once each. It is safe for concurrent use.
type Loader struct {
	ix    *Index
	ins   Inserter
	now   func() time.Time
	buses []string

	mu      sync.Mutex
	loaded  map[string]bool // inserted by us, or in ProcModules at start
	failed  map[string]bool // insertion failed: not retried by LoadForDevices
	active  map[string]bool // being loaded: breaks softdep cycles
	timings []Timing
}

// DefaultDir returns /lib/modules/$(uname -r).
func DefaultDir() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return "/lib/modules/" + unix.ByteSliceToString(u.Release[:]), nil
}

// New reads the module tree's index and the list of loaded modules.
func New(o Options) (*Loader, error) {
	if o.Dir == "" {
		d, err := DefaultDir()
		if err != nil {
			return nil, err
		}
		o.Dir = d
	}
	if o.ProcModules == "" {
		o.ProcModules = "/proc/modules"
	}
	if o.Inserter == nil {
		o.Inserter = Syscalls{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ix, err := ReadIndex(o.Dir)
	if err != nil {
		return nil, err
	}
	loaded, err := readProcModules(o.ProcModules)
	if err != nil {
		return nil, err
	}
	return &Loader{
		ix: ix, ins: o.Inserter, now: o.Now, buses: o.Buses,
		loaded: loaded, failed: make(map[string]bool), active: make(map[string]bool),
	}, nil
}

// readProcModules returns the names in /proc/modules ("name size refs deps
// state addr" per line).
func readProcModules(path string) (map[string]bool, error) {
	loaded := make(map[string]bool)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return loaded, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read loaded modules: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), maxIndexLine)
	for sc.Scan() {
		if name, _, _ := strings.Cut(sc.Text(), " "); name != "" {
			loaded[Normalize(name)] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read loaded modules from %s: %w", path, err)
	}
	return loaded, nil
}

// Index returns the module index the Loader uses.
func (l *Loader) Index() *Index { return l.ix }

// Load loads a module (by name or alias) with its dependencies, passing
// params ("key=value key2=value2") to it alone. A builtin or already loaded
// module is not an error. An alias naming several modules loads all; it
// fails only if none loads.
func (l *Loader) Load(name, params string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	mods, builtin := l.ix.Lookup(name)
	if builtin {
		return nil
	}
	if len(mods) == 0 {
		if l.loaded[Normalize(name)] {
			return nil
		}
		return fmt.Errorf("load module %s: %w in %s (modules.dep, modules.alias, modules.builtin)", name, ErrNotFound, l.ix.Dir)
	}
	return l.loadAny(mods, params)
}

// loadAny loads every module of an alias; it fails only if none loads (a
// driver for another CPU or device may refuse with ENODEV).
func (l *Loader) loadAny(mods []string, params string) error {
	var errs []error
	for _, m := range mods {
		if err := l.loadModule(m, params); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == len(mods) {
		return errors.Join(errs...)
	}
	return nil
}

// Loaded reports whether a module is loaded (by this Loader or before it).
func (l *Loader) Loaded(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.loaded[Normalize(name)]
}

// Timings returns every insertion so far, in order.
func (l *Loader) Timings() []Timing {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Timing(nil), l.timings...)
}

// loadModule loads a module known to modules.dep: soft pre-dependencies,
// hard dependencies (last to first, as depmod orders them), the module,
// then soft post-dependencies.
func (l *Loader) loadModule(name, params string) error {
	if l.loaded[name] || l.active[name] {
		return nil
	}
	l.active[name] = true
	defer delete(l.active, name)
	pre, post := l.ix.SoftDeps(name)
	for _, s := range pre {
		if err := l.loadSoft(s); err != nil {
			return fmt.Errorf("load module %s: soft dependency %s: %w", name, s, err)
		}
	}
	deps := l.ix.Deps(name)
	for i := len(deps) - 1; i >= 0; i-- {
		if _, known := l.ix.mods[deps[i]]; !known {
			return fmt.Errorf("load module %s: dependency %s is not in %s/modules.dep", name, deps[i], l.ix.Dir)
		}
		if err := l.loadModule(deps[i], ""); err != nil {
			return fmt.Errorf("load module %s: dependency: %w", name, err)
		}
	}
	if err := l.insert(name, params); err != nil {
		return err
	}
	for _, s := range post {
		if err := l.loadSoft(s); err != nil {
			return fmt.Errorf("load module %s: soft dependency %s: %w", name, s, err)
		}
	}
	return nil
}

// loadSoft loads a soft dependency; one that nothing provides is skipped,
// as modprobe does.
func (l *Loader) loadSoft(name string) error {
	mods, _ := l.ix.Lookup(name)
	if len(mods) == 0 {
		return nil
	}
	return l.loadAny(mods, "")
}

// insert inserts one module file and records its timing.
func (l *Loader) insert(name, params string) error {
	path, _ := l.ix.Path(name)
	start := l.now()
	err := insertFile(l.ins, path, params)
	if errors.Is(err, unix.EEXIST) {
		err = nil
	}
	l.timings = append(l.timings, Timing{Module: name, File: path, Took: l.now().Sub(start), Err: err})
	if err != nil {
		l.failed[name] = true
		return fmt.Errorf("load module %s from %s: %w", name, path, err)
	}
	l.loaded[name] = true
	return nil
}
