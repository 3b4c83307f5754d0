package initramfs

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/nbdboot/nbdboot/internal/testutil"
	"github.com/u-root/mkuimage/cpio"
)

// testInit is a small main package built as /init in these tests.
const testInit = "github.com/nbdboot/nbdboot/internal/vm/testinit"

// TestBuildReproducible builds the same image twice and compares bytes,
// then checks the archive's layout and that Reuse keeps the output.
func TestBuildReproducible(t *testing.T) {
	testutil.RequireTool(t, "go")
	root := fakeKernel(t)
	dir := t.TempDir()
	c := Config{
		KernelRoot:  root,
		Modules:     []string{"ext4", "nbd"},
		Init:        testInit,
		Compression: Gzip,
	}
	var results []*Result
	for _, name := range []string{"a.cpio.gz", "b.cpio.gz"} {
		c.Output = filepath.Join(dir, name)
		r, err := Build(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, r)
	}
	a, b := results[0], results[1]
	if a.SHA256 != b.SHA256 || a.Size != b.Size {
		t.Fatalf("two builds differ: %s (%d bytes) vs %s (%d bytes)", a.SHA256, a.Size, b.SHA256, b.Size)
	}
	if a.Kernel != "6.1.0-test" || len(a.Modules) != 6 {
		t.Errorf("result kernel %q modules %q", a.Kernel, a.Modules)
	}

	entries := readArchive(t, a.Path)
	for name, check := range map[string]func(cpio.Record) bool{
		"init":         func(r cpio.Record) bool { return r.Mode&cpio.S_IFMT == cpio.S_IFLNK && readAll(r) == "bin/testinit" },
		"bin/testinit": func(r cpio.Record) bool { return r.Mode&cpio.S_IFMT == cpio.S_IFREG && r.Mode&0o111 != 0 },
		"dev/console":  func(r cpio.Record) bool { return r.Mode&cpio.S_IFMT == cpio.S_IFCHR && r.Rmajor == 5 && r.Rminor == 1 },
		"lib/modules/6.1.0-test/kernel/fs/ext4/ext4.ko": func(r cpio.Record) bool { return readAll(r) == "ext4 module" },
		"lib/modules/6.1.0-test/modules.dep":            func(r cpio.Record) bool { return r.FileSize > 0 },
	} {
		r, ok := entries[name]
		if !ok {
			t.Errorf("archive lacks %s", name)
			continue
		}
		if !check(r) {
			t.Errorf("archive entry %s wrong: %v", name, r.Info)
		}
		if r.MTime != 0 || r.UID != 0 || r.GID != 0 {
			t.Errorf("archive entry %s not normalised: %v", name, r.Info)
		}
	}
	if _, ok := entries["lib/modules/6.1.0-test/kernel/drivers/net/unused.ko"]; ok {
		t.Error("archive holds a module nobody asked for")
	}

	c.Output = a.Path
	c.Reuse = true
	r, err := Build(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Reused || r.SHA256 != a.SHA256 {
		t.Errorf("rebuild with Reuse: reused %v, sha256 %s, want reused %s", r.Reused, r.SHA256, a.SHA256)
	}
	// A changed output is rebuilt.
	if err := os.WriteFile(a.Path, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r, err = Build(context.Background(), c); err != nil || r.Reused || r.SHA256 != a.SHA256 {
		t.Errorf("rebuild over a changed output: %+v, %v", r, err)
	}
}

func readAll(r cpio.Record) string {
	b, _ := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
	return string(b)
}

// readArchive returns the records of a gzipped cpio by name.
func readArchive(t *testing.T, path string) map[string]cpio.Record {
	t.Helper()
	f, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]cpio.Record)
	for _, r := range recs {
		out[r.Name] = r
	}
	return out
}

// TestDefaultToolsResolve catches u-root commands whose dependencies this
// module does not pin (missing go.sum entries) without building them.
func TestDefaultToolsResolve(t *testing.T) {
	testutil.RequireTool(t, "go")
	args := append([]string{"list", "-deps", "-tags", "goshsmall"}, DefaultTools...)
	if _, err := goCmd(context.Background(), "", args...); err != nil {
		t.Fatal(err)
	}
}

func TestBuildConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{Init: testInit},
		{Output: "x"},
		{Output: "x", Init: testInit, Shell: "gosh"},
		{Output: "x", Init: testInit, KernelRoot: t.TempDir()},
	} {
		if _, err := Build(context.Background(), c); err == nil {
			t.Errorf("Build(%+v) succeeded", c)
		}
	}
}

func TestParseCompression(t *testing.T) {
	for _, s := range []string{"gzip", "zstd", "none"} {
		if c, err := ParseCompression(s); err != nil || string(c) != s {
			t.Errorf("ParseCompression(%q) = %q, %v", s, c, err)
		}
	}
	if _, err := ParseCompression("xz"); err == nil {
		t.Error("ParseCompression accepted xz")
	}
}
