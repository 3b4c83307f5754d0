package kmod

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestLoadOrder(t *testing.T) {
	tests := []struct {
		name   string
		load   []string // Load calls, in order
		loaded []string // already in /proc/modules
		want   []string // insertions, in order
	}{
		// ext4 needs crc32c only through modules.softdep; the alias names
		// two modules and both load. Hard deps load last to first.
		{"ext4", []string{"ext4"}, nil,
			[]string{"crc32c_generic", "crc32c_intel", "crc16", "mbcache", "jbd2", "ext4"}},
		{"each once", []string{"jbd2", "ext4", "ext4", "jbd2", "crc16"}, nil,
			[]string{"jbd2", "crc32c_generic", "crc32c_intel", "crc16", "mbcache", "ext4"}},
		{"already loaded", []string{"ext4"}, []string{"jbd2", "crc32c_generic", "crc32c-intel"},
			[]string{"crc16", "mbcache", "ext4"}},
		{"virtio_net", []string{"virtio_net"}, nil,
			[]string{"virtio_ring", "virtio", "failover", "net_failover", "virtio_net"}},
		{"alias glob", []string{virtioPCIAlias}, nil,
			[]string{"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci"}},
		{"alias by name", []string{"fs-ext4", "block-major-43-0"}, nil,
			[]string{"crc32c_generic", "crc32c_intel", "crc16", "mbcache", "jbd2", "ext4", "nbd"}},
		{"dash and underscore", []string{"virtio-pci", "crc32c_intel", "crc32c-intel", "fs_ext4"}, nil,
			[]string{"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci", "crc32c_intel",
				"crc32c_generic", "crc16", "mbcache", "jbd2", "ext4"}},
		{"builtin", []string{"loop", "overlay", "fs-overlay"}, nil, nil},
		{"softdep cycle", []string{"cyc_a"}, nil, []string{"cyc_b", "cyc_a"}},
		{"softdep without provider is skipped", []string{"nbd"}, nil, []string{"nbd"}},
		{"post softdep", []string{"withpost"}, nil, []string{"crc16", "withpost", "nbd"}},
		{"loaded before but unknown to the tree", []string{"mystery"}, []string{"mystery"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, rec := newLoader(t, fakeTree(t), tt.loaded...)
			for _, m := range tt.load {
				if err := l.Load(m, ""); err != nil {
					t.Fatalf("Load(%s): %v", m, err)
				}
			}
			if got := rec.modules(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("inserted %v\nwant     %v", got, tt.want)
			}
			for _, m := range tt.want {
				if !l.Loaded(m) {
					t.Errorf("Loaded(%s) = false", m)
				}
			}
		})
	}
}

func TestLoadParamsOnlyForTheModule(t *testing.T) {
	l, rec := newLoader(t, fakeTree(t))
	if err := l.Load("ext4", "debug_want_extra_isize=1"); err != nil {
		t.Fatal(err)
	}
	for _, c := range rec.calls {
		want := ""
		if c.module == "ext4" {
			want = "debug_want_extra_isize=1"
		}
		if c.params != want || c.flags != 0 || c.inMem {
			t.Errorf("%s inserted with %+v, want params %q via finit_module, flags 0", c.module, c, want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	t.Run("not found", func(t *testing.T) {
		l, _ := newLoader(t, fakeTree(t))
		err := l.Load("no-such-driver", "")
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "no-such-driver") {
			t.Errorf("Load = %v; want ErrNotFound naming the module", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		dir := fakeTree(t, "lost")
		l, _ := newLoader(t, dir)
		err := l.Load("lost", "")
		want := filepath.Join(dir, "kernel/test/lost.ko")
		if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "load module lost from "+want) {
			t.Errorf("Load = %v; want it to name the module and %s", err, want)
		}
	})
	t.Run("dependency not in modules.dep", func(t *testing.T) {
		l, _ := newLoader(t, fakeTree(t))
		err := l.Load("needs_ghost", "")
		if err == nil || !strings.Contains(err.Error(), "needs_ghost: dependency ghost is not in") {
			t.Errorf("Load = %v", err)
		}
	})
	t.Run("insert fails", func(t *testing.T) {
		dir := fakeTree(t)
		l, rec := newLoader(t, dir)
		rec.fail["jbd2"] = unix.ENOEXEC
		err := l.Load("ext4", "")
		if !errors.Is(err, unix.ENOEXEC) || !strings.Contains(err.Error(), "load module jbd2 from "+filepath.Join(dir, "kernel/fs/jbd2/jbd2.ko")) ||
			!strings.HasPrefix(err.Error(), "load module ext4: dependency: ") {
			t.Errorf("Load = %v", err)
		}
		if got := rec.modules(); got[len(got)-1] != "jbd2" {
			t.Errorf("went on after the failure: %v", got)
		}
		if l.Loaded("jbd2") || l.Loaded("ext4") {
			t.Error("failed modules counted as loaded")
		}
	})
	t.Run("EEXIST is success", func(t *testing.T) {
		l, rec := newLoader(t, fakeTree(t))
		rec.fail["nbd"] = unix.EEXIST
		if err := l.Load("nbd", ""); err != nil || !l.Loaded("nbd") {
			t.Errorf("Load = %v, Loaded = %t", err, l.Loaded("nbd"))
		}
	})
	t.Run("one of an alias's modules may fail", func(t *testing.T) {
		l, rec := newLoader(t, fakeTree(t))
		rec.fail["crc32c_intel"] = unix.ENODEV // no SSE4.2 under qemu's TCG CPU
		if err := l.Load("ext4", ""); err != nil {
			t.Errorf("Load = %v", err)
		}
		l, rec = newLoader(t, fakeTree(t))
		rec.fail["crc32c_intel"] = unix.ENODEV
		rec.fail["crc32c_generic"] = unix.ENODEV
		if err := l.Load("crypto-crc32c", ""); err == nil {
			t.Error("Load succeeded with every module of the alias failing")
		}
	})
}

func TestCompressedModules(t *testing.T) {
	l, rec := newLoader(t, fakeTree(t))
	if err := l.Load("gzipped", "a=1"); err != nil {
		t.Fatal(err)
	}
	if want := (insertion{module: "gzipped", params: "a=1", inMem: true}); rec.calls[0] != want {
		t.Errorf(".ko.gz inserted as %+v, want %+v", rec.calls[0], want)
	}
	if err := l.Load("xzed", ""); err != nil {
		t.Fatal(err)
	}
	if want := (insertion{module: "MODULE xzed"[7:], flags: unix.MODULE_INIT_COMPRESSED_FILE}); rec.calls[1] != want {
		t.Errorf(".ko.xz inserted as %+v, want %+v", rec.calls[1], want)
	}

	l, rec = newLoader(t, fakeTree(t))
	rec.fail["xzed"] = unix.EOPNOTSUPP
	err := l.Load("xzed", "")
	if !errors.Is(err, unix.EOPNOTSUPP) || !strings.Contains(err.Error(), "CONFIG_MODULE_DECOMPRESS") || !strings.Contains(err.Error(), "xzed") {
		t.Errorf("Load = %v; want it to explain the missing decompressor", err)
	}
}

func TestTimings(t *testing.T) {
	dir := fakeTree(t)
	l, rec := newLoader(t, dir)
	rec.fail["failover"] = unix.ENOMEM
	_ = l.Load("nbd", "")
	_ = l.Load("net_failover", "")
	got := l.Timings()
	want := []Timing{
		{Module: "nbd", File: filepath.Join(dir, "kernel/drivers/block/nbd.ko"), Took: time.Millisecond},
		{Module: "failover", File: filepath.Join(dir, "kernel/net/core/failover.ko"), Took: time.Millisecond, Err: unix.ENOMEM},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Timings() = %+v\nwant %+v", got, want)
	}
}

// TestLoadForDevices: virtio_pci binds the PCI NIC and creates a virtio
// device (the recorder's hook writes its modalias), whose driver
// virtio_net loads in the second round. e1000's file is not in the tree,
// so its device is skipped.
func TestLoadForDevices(t *testing.T) {
	sys := t.TempDir()
	addDevice := func(bus, dev, alias string) {
		d := filepath.Join(sys, "bus", bus, "devices", dev)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "modalias"), []byte(alias+"\n"), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	addDevice("pci", "0000:00:03.0", virtioPCIAlias)
	addDevice("pci", "0000:00:02.0", e1000Alias)
	addDevice("pci", "0000:00:01.0", "pci:v00008086d00007000sv00001AF4sd00001100bc06sc01i00") // no driver
	if err := os.MkdirAll(filepath.Join(sys, "bus", "platform", "devices", "serial8250"), 0o755); err != nil {
		t.Fatal(err) // a device without modalias
	}

	l, rec := newLoader(t, fakeTree(t, "e1000"))
	rec.after["virtio_pci"] = func() { addDevice("virtio", "virtio0", virtioNetAlias) }
	got, err := l.LoadForDevices(sys)
	if err != nil {
		t.Fatal(err)
	}
	// The load order measured on Debian 6.1 (test-environment.md).
	want := []string{"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
		"failover", "net_failover", "virtio_net"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LoadForDevices = %v\nwant %v", got, want)
	}
	if !reflect.DeepEqual(rec.modules(), want) {
		t.Errorf("inserted %v", rec.modules())
	}
	// A second walk finds nothing new.
	if got, err := l.LoadForDevices(sys); err != nil || len(got) != 0 {
		t.Errorf("second LoadForDevices = %v, %v", got, err)
	}
}

func TestLoadForDevicesErrorsAndBuses(t *testing.T) {
	sys := t.TempDir()
	for bus, alias := range map[string]string{"pci": virtioPCIAlias, "virtio": virtioNetAlias} {
		d := filepath.Join(sys, "bus", bus, "devices", "dev0")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "modalias"), []byte(alias), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	dir := fakeTree(t)
	rec := &recorder{fail: map[string]error{"virtio_pci": unix.ENODEV}}
	proc := filepath.Join(t.TempDir(), "none")
	l, err := New(Options{Dir: dir, ProcModules: proc, Inserter: rec, Buses: []string{"virtio"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := l.LoadForDevices(sys)
	if err != nil || !reflect.DeepEqual(got, []string{"virtio_ring", "virtio", "failover", "net_failover", "virtio_net"}) {
		t.Errorf("virtio bus only: %v, %v", got, err)
	}
	l, err = New(Options{Dir: dir, ProcModules: proc, Inserter: rec})
	if err != nil {
		t.Fatal(err)
	}
	got, err = l.LoadForDevices(sys)
	if err == nil || !strings.Contains(err.Error(), "device "+virtioPCIAlias+": load module virtio_pci from ") {
		t.Errorf("error = %v; want it to name the device and the module", err)
	}
	if !reflect.DeepEqual(got, []string{"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev",
		"failover", "net_failover", "virtio_net"}) {
		t.Errorf("the walk did not go on after the failure: %v", got)
	}
}
