package kmod

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// A walk returns each device's modalias once: a later call sees only the
// devices added since. Entries without modalias, plain files and missing
// trees are skipped.
func TestDeviceWalkNewOnly(t *testing.T) {
	sys := t.TempDir()
	add := func(bus, dev, alias string) {
		d := filepath.Join(sys, "bus", bus, "devices", dev)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if alias != "" {
			if err := os.WriteFile(filepath.Join(d, "modalias"), []byte(alias+"\n"), 0o444); err != nil {
				t.Fatal(err)
			}
		}
	}
	add("pci", "0000:00:03.0", virtioPCIAlias)
	add("pci", "0000:00:04.0", virtioPCIAlias) // same alias: listed once
	add("platform", "serial8250", "")
	if err := os.WriteFile(filepath.Join(sys, "bus", "platform", "devices", "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sys, "bus", "notabus"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w := &deviceWalk{sysfs: sys, read: make(map[string]bool)}
	got, err := w.newModaliases()
	if err != nil || !reflect.DeepEqual(got, []string{virtioPCIAlias}) {
		t.Fatalf("first walk = %q, %v", got, err)
	}
	add("virtio", "virtio0", virtioNetAlias)
	got, err = w.newModaliases()
	if err != nil || !reflect.DeepEqual(got, []string{virtioNetAlias}) {
		t.Fatalf("second walk = %q, %v; want only the new device", got, err)
	}
	if got, err = w.newModaliases(); err != nil || len(got) != 0 {
		t.Fatalf("third walk = %q, %v; want nothing", got, err)
	}
	none := &deviceWalk{sysfs: filepath.Join(sys, "missing"), read: make(map[string]bool)}
	if got, err := none.newModaliases(); err != nil || len(got) != 0 {
		t.Errorf("walk of a missing tree = %q, %v", got, err)
	}
}
