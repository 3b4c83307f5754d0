package initramfs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeKernel writes a module tree: ext4 needs crc16 and mbcache, and
// crc32c through a softdep on an alias provided by two modules; jbd2 is
// built in.
func fakeKernel(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "lib", "modules", "6.1.0-test")
	files := map[string]string{
		"modules.dep": "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko\n" +
			"kernel/lib/crc16.ko:\n" +
			"kernel/fs/mbcache.ko:\n" +
			"kernel/crypto/crc32c_generic.ko:\n" +
			"kernel/arch/x86/crypto/crc32c-intel.ko:\n" +
			"kernel/drivers/block/nbd.ko:\n" +
			"kernel/drivers/net/unused.ko:\n",
		"modules.softdep": "softdep ext4 pre: crypto-crc32c\nsoftdep unused pre: nbd\n",
		"modules.alias": "alias crypto-crc32c crc32c_generic\nalias crypto-crc32c crc32c_intel\n" +
			"alias fs-ext4 ext4\nalias net-unused unused\n",
		"modules.builtin":                        "kernel/fs/jbd2/jbd2.ko\n",
		"modules.order":                          "kernel/fs/ext4/ext4.ko\nkernel/drivers/net/unused.ko\nkernel/drivers/block/nbd.ko\n",
		"kernel/fs/ext4/ext4.ko":                 "ext4 module",
		"kernel/lib/crc16.ko":                    "crc16 module",
		"kernel/fs/mbcache.ko":                   "mbcache module",
		"kernel/crypto/crc32c_generic.ko":        "crc32c module",
		"kernel/arch/x86/crypto/crc32c-intel.ko": "crc32c intel module",
		"kernel/drivers/block/nbd.ko":            "nbd module",
		"kernel/drivers/net/unused.ko":           "unused module",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestResolve(t *testing.T) {
	m, err := LoadModules(fakeKernel(t), "")
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != "6.1.0-test" {
		t.Errorf("version = %q", m.Version)
	}
	tests := []struct {
		names   []string
		want    []string
		wantErr bool
	}{
		{[]string{"ext4"}, []string{"crc16", "crc32c_generic", "crc32c_intel", "ext4", "mbcache"}, false},
		{[]string{"nbd", "jbd2"}, []string{"nbd"}, false},                                                    // jbd2 is built in
		{[]string{"fs-ext4"}, []string{"crc16", "crc32c_generic", "crc32c_intel", "ext4", "mbcache"}, false}, // an alias
		{[]string{"crc32c-intel"}, []string{"crc32c_intel"}, false},                                          // dashes normalised
		{[]string{"nosuchmodule"}, nil, true},
	}
	for _, tt := range tests {
		got, err := m.Resolve(tt.names)
		if (err != nil) != tt.wantErr {
			t.Errorf("Resolve(%q): err %v, want error %v", tt.names, err, tt.wantErr)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("Resolve(%q) = %q, want %q", tt.names, got, tt.want)
		}
	}
}

func TestStage(t *testing.T) {
	m, err := LoadModules(fakeKernel(t), "6.1.0-test")
	if err != nil {
		t.Fatal(err)
	}
	set, err := m.Resolve([]string{"ext4", "nbd"})
	if err != nil {
		t.Fatal(err)
	}
	stage := t.TempDir()
	if err := m.Stage(stage, set); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(stage, "lib", "modules", "6.1.0-test")
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := read("kernel/fs/ext4/ext4.ko"); got != "ext4 module" {
		t.Errorf("staged ext4.ko = %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "kernel/drivers/net/unused.ko")); !os.IsNotExist(err) {
		t.Errorf("unused.ko staged: %v", err)
	}
	wantDep := "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko\n" +
		"kernel/lib/crc16.ko:\nkernel/fs/mbcache.ko:\nkernel/crypto/crc32c_generic.ko:\n" +
		"kernel/arch/x86/crypto/crc32c-intel.ko:\nkernel/drivers/block/nbd.ko:\n"
	if got := read("modules.dep"); got != wantDep {
		t.Errorf("modules.dep =\n%s\nwant\n%s", got, wantDep)
	}
	if got := read("modules.softdep"); got != "softdep ext4 pre: crypto-crc32c\n" {
		t.Errorf("modules.softdep = %q", got)
	}
	if got := read("modules.alias"); strings.Contains(got, "unused") || !strings.Contains(got, "alias fs-ext4 ext4") {
		t.Errorf("modules.alias = %q", got)
	}
	if got := read("modules.order"); got != "kernel/fs/ext4/ext4.ko\nkernel/drivers/block/nbd.ko\n" {
		t.Errorf("modules.order = %q", got)
	}
	if got := read("modules.builtin"); got != "kernel/fs/jbd2/jbd2.ko\n" {
		t.Errorf("modules.builtin = %q", got)
	}
}

// -kmod takes an unpacked kernel package (ROOT/lib/modules/VERSION) and a
// modules directory itself (/lib/modules/$(uname -r)), and says which.
func TestLoadModulesLayouts(t *testing.T) {
	root := fakeKernel(t)
	dir := filepath.Join(root, "lib", "modules", "6.1.0-test")
	for _, tc := range []struct {
		path, version, layout string
	}{
		{root, "", LayoutPackage},
		{root, "6.1.0-test", LayoutPackage},
		{dir, "", LayoutModulesDir},
		{dir, "6.1.0-test", LayoutModulesDir},
		{dir + "/", "", LayoutModulesDir},
	} {
		m, err := LoadModules(tc.path, tc.version)
		if err != nil {
			t.Errorf("LoadModules(%q, %q): %v", tc.path, tc.version, err)
			continue
		}
		if m.Version != "6.1.0-test" || m.Layout != tc.layout || m.Dir() != dir {
			t.Errorf("LoadModules(%q, %q) = version %q layout %q dir %q; want 6.1.0-test, %q, %q",
				tc.path, tc.version, m.Version, m.Layout, m.Dir(), tc.layout, dir)
		}
		set, err := m.Resolve([]string{"nbd"})
		if err != nil || len(set) != 1 {
			t.Errorf("LoadModules(%q).Resolve(nbd) = %v, %v", tc.path, set, err)
		}
	}
	if _, err := LoadModules(dir, "5.10.0-other"); err == nil || !strings.Contains(err.Error(), "not 5.10.0-other") {
		t.Errorf("LoadModules of a modules directory with another -kver: %v, want an error naming both versions", err)
	}
}

func TestLoadModulesErrors(t *testing.T) {
	if _, err := LoadModules(t.TempDir(), ""); err == nil || !strings.Contains(err.Error(), "modules.dep") {
		t.Errorf("LoadModules of an empty directory: %v, want an error naming both forms", err)
	}
	root := fakeKernel(t)
	if _, err := LoadModules(root, "5.10.0-other"); err == nil {
		t.Error("LoadModules of a missing version succeeded")
	}
}
