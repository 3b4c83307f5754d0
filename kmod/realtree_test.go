package kmod

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"
)

// realTree returns the Debian kernel's module tree unpacked by the build
// (scripts fetch it into build/kernel), or skips.
func realTree(t *testing.T) string {
	t.Helper()
	m, _ := filepath.Glob("../build/kernel/root/lib/modules/*/modules.dep")
	if len(m) == 0 {
		t.Skip("no Debian kernel modules under build/kernel/root/lib/modules (fetched by the build)")
	}
	return filepath.Dir(m[0])
}

// TestRealTree parses the Debian kernel's real modules.* files and resolves
// what nbdboot loads on a virtio guest with an ext4 root.
func TestRealTree(t *testing.T) {
	dir := realTree(t)
	start := time.Now()
	l, rec := newLoader(t, dir)
	t.Logf("read the index of %s in %v", dir, time.Since(start))

	for _, m := range []string{"ext4", "nbd", "overlay", "squashfs"} {
		if err := l.Load(m, ""); err != nil {
			t.Fatalf("Load(%s): %v", m, err)
		}
	}
	got := rec.modules()
	t.Logf("insertions: %v", got)
	pos := make(map[string]int)
	for i, m := range got {
		if _, dup := pos[m]; dup {
			t.Errorf("%s inserted twice", m)
		}
		pos[m] = i
	}
	// ext4 needs crc32c through modules.softdep, and jbd2, mbcache and
	// crc16 through modules.dep.
	for _, before := range []string{"crc32c_generic", "jbd2", "mbcache", "crc16"} {
		if _, ok := pos[before]; !ok || pos[before] > pos["ext4"] {
			t.Errorf("%s not inserted before ext4", before)
		}
	}
	for _, m := range []string{"nbd", "overlay", "squashfs"} {
		if _, ok := pos[m]; !ok {
			t.Errorf("%s not inserted", m)
		}
	}

	// qemu's virtio-net-pci: virtio_pci in the first round, virtio_net for
	// the virtio device it creates in the second.
	sys := t.TempDir()
	add := func(bus, dev, alias string) {
		d := filepath.Join(sys, "bus", bus, "devices", dev)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "modalias"), []byte(alias+"\n"), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	add("pci", "0000:00:03.0", virtioPCIAlias)
	rec.after["virtio_pci"] = func() { add("virtio", "virtio0", virtioNetAlias) }
	loaded, err := l.LoadForDevices(sys)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
		"failover", "net_failover", "virtio_net"} // as measured (test-environment.md)
	if !reflect.DeepEqual(loaded, want) {
		t.Errorf("LoadForDevices = %v\nwant %v", loaded, want)
	}
	if !slices.Contains(l.Index().MatchAlias("cpu:type:x86,ven0000fam0006mod003F:feature:,0000,0094"), "crc32c_intel") {
		t.Error("the CPU modalias does not match crc32c_intel")
	}
}
