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
	"syscall"
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
	w := &deviceWalk{sysfs: sysfsRoot, buses: l.buses, read: make(map[string]bool)}
	var errs []error
	for round := 0; round < maxRounds; round++ {
		aliases, err := w.newModaliases()
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

// deviceWalk lists the modaliases of the devices under sysfs/bus/*/devices,
// each device once across rounds. It reads directories and opens
// modalias files directly (no glob, no stat): in a TCG guest each sysfs
// system call costs up to a millisecond, and a later round re-reads only
// the directory listings.
type deviceWalk struct {
	sysfs string
	buses []string        // empty: every bus
	read  map[string]bool // "bus/device" entries already looked at
}

// newModaliases returns the distinct, sorted modalias strings of the
// devices not seen by an earlier call.
func (w *deviceWalk) newModaliases() ([]string, error) {
	busDir := filepath.Join(w.sysfs, "bus")
	buses, err := os.ReadDir(busDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("walk %s: %w", busDir, err)
	}
	var out []string
	for _, b := range buses {
		bus := b.Name()
		if len(w.buses) > 0 && !slices.Contains(w.buses, bus) {
			continue
		}
		devDir := filepath.Join(busDir, bus, "devices")
		devs, err := os.ReadDir(devDir)
		if err != nil { // not a bus directory, or the bus went away
			continue
		}
		for _, d := range devs {
			key := bus + "/" + d.Name()
			if w.read[key] {
				continue
			}
			w.read[key] = true
			ma, err := readSmall(filepath.Join(devDir, d.Name(), "modalias"), 4096)
			// No modalias, or the device went away. A device is linked
			// into its bus's list after its attributes exist, so a
			// later round would not find one either.
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("read modalias: %w", err)
			}
			if ma = strings.TrimSpace(ma); ma != "" {
				out = append(out, ma)
			}
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
