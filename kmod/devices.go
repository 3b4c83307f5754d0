package kmod

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// maxRounds bounds the LoadForDevices walks: each round may load bus
// drivers that create devices for the next (pci -> virtio -> …).
const maxRounds = 8

// LoadForDevices loads the drivers of the devices in sysfsRoot (normally
// /sys): for every sysfsRoot/bus/*/devices/*/modalias it loads all modules
// whose modules.alias patterns match, as udev would. It walks again while
// a round loaded something, at most 8 times. A matching module whose file
// is absent from the tree is skipped (an initramfs ships only some
// drivers). It returns every module it inserted (dependencies included) in
// load order; errors name the device's modalias and the module, and do not
// stop the walk.
func (l *Loader) LoadForDevices(sysfsRoot string) ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	first := len(l.timings)
	seen := make(map[string]bool)
	var errs []error
	for round := 0; round < maxRounds; round++ {
		aliases, err := readModaliases(sysfsRoot, l.buses)
		if err != nil {
			errs = append(errs, err)
			break
		}
		before := len(l.loaded)
		for _, ma := range aliases {
			if seen[ma] {
				continue
			}
			seen[ma] = true
			for _, m := range l.ix.MatchAlias(ma) {
				if l.loaded[m] || l.failed[m] || !l.hasFile(m) {
					continue
				}
				if err := l.loadModule(m, ""); err != nil {
					errs = append(errs, fmt.Errorf("device %s: %w", ma, err))
				}
			}
		}
		if len(l.loaded) == before {
			break
		}
	}
	var inserted []string
	for _, t := range l.timings[first:] {
		if t.Err == nil {
			inserted = append(inserted, t.Module)
		}
	}
	return inserted, errors.Join(errs...)
}

func (l *Loader) hasFile(name string) bool {
	p, ok := l.ix.Path(name)
	if !ok {
		return false
	}
	_, err := os.Stat(p)
	return err == nil
}

// readModaliases returns the distinct, sorted modalias strings of the
// devices on the given buses (all when buses is empty).
func readModaliases(sysfsRoot string, buses []string) ([]string, error) {
	pattern := filepath.Join(sysfsRoot, "bus", "*", "devices", "*", "modalias")
	files, err := filepath.Glob(pattern)
	if err != nil {
		return nil, fmt.Errorf("walk %s: %w", pattern, err)
	}
	var out []string
	for _, f := range files {
		bus := filepath.Base(filepath.Dir(filepath.Dir(filepath.Dir(f))))
		if len(buses) > 0 && !slices.Contains(buses, bus) {
			continue
		}
		ma, err := readSmall(f, 4096)
		if errors.Is(err, fs.ErrNotExist) { // the device went away
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read modalias: %w", err)
		}
		if ma = strings.TrimSpace(ma); ma != "" {
			out = append(out, ma)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// readSmall reads at most max bytes of a file.
func readSmall(path string, max int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max))
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return string(b), nil
}
