package kmod

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReadIndex(t *testing.T) {
	dir := fakeTree(t)
	ix, err := ReadIndex(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := ix.Deps("ext4"); !reflect.DeepEqual(got, []string{"jbd2", "mbcache", "crc16"}) {
		t.Errorf("Deps(ext4) = %v", got)
	}
	if pre, post := ix.SoftDeps("ext4"); !reflect.DeepEqual(pre, []string{"crc32c"}) || post != nil {
		t.Errorf("SoftDeps(ext4) = %v, %v", pre, post)
	}
	if pre, post := ix.SoftDeps("withpost"); !reflect.DeepEqual(pre, []string{"crc16"}) || !reflect.DeepEqual(post, []string{"nbd"}) {
		t.Errorf("SoftDeps(withpost) = %v, %v", pre, post)
	}
	if p, ok := ix.Path("crc32c-intel"); !ok || p != filepath.Join(dir, "kernel/arch/x86/crypto/crc32c-intel.ko") {
		t.Errorf("Path(crc32c-intel) = %q, %t", p, ok)
	}
	if !ix.Builtin("loop") || ix.Builtin("ext4") {
		t.Error("Builtin wrong")
	}
	for _, tt := range []struct {
		name    string
		mods    []string
		builtin bool
	}{
		{"ext4", []string{"ext4"}, false},
		{"crc32c", []string{"crc32c_generic", "crc32c_intel"}, false},
		{"crypto-crc32c", []string{"crc32c_generic", "crc32c_intel"}, false},
		{virtioPCIAlias, []string{"virtio_pci"}, false},
		{"loop", nil, true},
		{"fs-overlay", nil, true},
		{"nope", nil, false},
	} {
		mods, builtin := ix.Lookup(tt.name)
		if !reflect.DeepEqual(mods, tt.mods) || builtin != tt.builtin {
			t.Errorf("Lookup(%s) = %v, %t; want %v, %t", tt.name, mods, builtin, tt.mods, tt.builtin)
		}
	}
	if got := ix.MatchAlias(virtioNetAlias); !reflect.DeepEqual(got, []string{"virtio_net"}) {
		t.Errorf("MatchAlias(%s) = %v", virtioNetAlias, got)
	}
}

func TestReadIndexErrors(t *testing.T) {
	tests := []struct {
		file, data, want string
	}{
		{"modules.dep", "kernel/a.ko:\nno colon here\n", "modules.dep line 2: want \"PATH: DEPS…\""},
		{"modules.alias", "# c\nalias onlypattern\n", "modules.alias line 2: want \"alias PATTERN MODULE\""},
		{"modules.softdep", "softdep\n", "modules.softdep line 1: want \"softdep MODULE"},
		{"modules.alias", "alias x " + strings.Repeat("y", maxIndexLine+10) + "\n", "modules.alias line 1: bufio.Scanner: token too long"},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte("kernel/a.ko:\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, tt.file), []byte(tt.data), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadIndex(dir)
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, tt.want)) {
			t.Errorf("ReadIndex with %s %.40q: %v; want %q", tt.file, tt.data, err, tt.want)
		}
	}
	_, err := ReadIndex(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "modules.dep") {
		t.Errorf("ReadIndex without modules.dep: %v", err)
	}
}
