package media

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/testutil"
)

// requireMediaTools skips (or, under make test, fails) without the Debian
// tools and boot loaders a build uses.
func requireMediaTools(t *testing.T, kind Kind) {
	t.Helper()
	for _, tool := range []string{"xorriso", "mkfs.fat", "mcopy", "syslinux"} {
		testutil.RequireTool(t, tool)
	}
	l := DefaultLoaders
	files := []string{l.IPXE}
	if kind.Hybrid() {
		files = []string{l.Isolinux, l.LDLinux, l.IsohybridMBR, l.GrubEFI}
	}
	for _, f := range files {
		if err := needFile(f); err != nil {
			testutil.Missing(t, "%v", err)
		}
	}
}

// fakeBoot writes a stand-in kernel and initramfs (the build does not look
// inside them).
func fakeBoot(t *testing.T) (kernel, initramfs string) {
	dir := t.TempDir()
	kernel, initramfs = filepath.Join(dir, "bzImage"), filepath.Join(dir, "initramfs.cpio.gz")
	if err := os.WriteFile(kernel, bytes.Repeat([]byte("kernel "), 100000), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(initramfs, bytes.Repeat([]byte("initramfs "), 50000), 0o644); err != nil {
		t.Fatal(err)
	}
	return kernel, initramfs
}

const testCmdline = "console=ttyS0 ip=dhcp nbdroot=nbd://192.0.2.7/lab rw"

// build builds c into a new file and returns the result.
func build(t *testing.T, c Config) *Result {
	t.Helper()
	c.Output = filepath.Join(t.TempDir(), "out.img")
	res, err := Build(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(c.Output)
	if err != nil || fi.Size() != res.Size {
		t.Fatalf("output %s: %v, size %v, result says %d", c.Output, err, fi, res.Size)
	}
	return res
}

// TestHybridReproducible: the same inputs give the same bytes, a second
// apart and as usb or iso; another command line gives another image. The
// image is an ISO with an MBR whose second partition is the EFI system
// partition, and holds the command line for both boot loaders.
func TestHybridReproducible(t *testing.T) {
	requireMediaTools(t, USB)
	k, i := fakeBoot(t)
	c := Config{Kind: USB, Kernel: k, Initramfs: i, Cmdline: testCmdline, Timeout: 3 * time.Second}
	a := build(t, c)
	time.Sleep(1100 * time.Millisecond) // a clock-dependent byte would differ
	c.Kind = ISO
	b := build(t, c)
	if a.SHA256 != b.SHA256 {
		t.Errorf("two builds differ: %s and %s", a.SHA256, b.SHA256)
	}
	c.Cmdline += " nbdboot.connections=2"
	if d := build(t, c); d.SHA256 == a.SHA256 {
		t.Error("another command line gave the same image")
	}
	img, err := os.ReadFile(a.Path)
	if err != nil {
		t.Fatal(err)
	}
	if len(img)%2048 != 0 || string(img[0x8001:0x8006]) != "CD001" {
		t.Errorf("not an ISO 9660 image (size %d)", len(img))
	}
	if img[510] != 0x55 || img[511] != 0xaa || img[446+16+4] != 0xef {
		t.Errorf("MBR: signature % x, partition 2 type %#x; want 55 aa and an EFI system partition (0xef)", img[510:512], img[446+16+4])
	}
	for _, want := range []string{"APPEND " + testCmdline, "'nbdroot=nbd://192.0.2.7/lab'"} {
		if !bytes.Contains(img, []byte(want)) {
			t.Errorf("image lacks %q", want)
		}
	}
	if s := a.String(); !strings.Contains(s, "kernel:") || !strings.Contains(s, k) || !strings.Contains(s, "grub-efi:") {
		t.Errorf("report does not say what went in:\n%s", s)
	}
}

// TestFloppyReproducible: the floppy is 1.44 MB, equal across builds a
// second apart (the SYSLINUX installer's file times are stamped over),
// and mtools reads back the files SYSLINUX and iPXE need.
func TestFloppyReproducible(t *testing.T) {
	requireMediaTools(t, Floppy)
	c := Config{Kind: Floppy, Cmdline: "console=ttyS0 ip=dhcp nbdroot=nbd://${server}/lab rw"}
	a := build(t, c)
	time.Sleep(2100 * time.Millisecond) // FAT times have 2 s steps
	b := build(t, c)
	if a.SHA256 != b.SHA256 {
		t.Errorf("two builds differ: %s and %s", a.SHA256, b.SHA256)
	}
	if a.Size != FloppySize {
		t.Errorf("floppy of %d bytes, want %d", a.Size, FloppySize)
	}
	c.Server = "http://192.0.2.8:8080"
	d := build(t, c)
	if d.SHA256 == a.SHA256 {
		t.Error("another server gave the same floppy")
	}
	if len(d.URLs) != 2 || d.URLs[0] != "http://192.0.2.8:8080/boot/${mac:hexhyp}/kernel" || d.URLs[1] != "http://192.0.2.8:8080/boot/${mac:hexhyp}/initramfs" {
		t.Errorf("floppy fetches %q", d.URLs)
	}
	out, err := exec.Command("mdir", "-a", "-b", "-i", a.Path, "::").CombinedOutput()
	if err != nil {
		t.Fatalf("mdir: %v: %s", err, out)
	}
	for _, f := range []string{"LDLINUX.SYS", "LDLINUX.C32", "IPXE.KRN", "NBDBOOT.IPX", "SYSLINUX.CFG"} {
		if !strings.Contains(strings.ToUpper(string(out)), f) {
			t.Errorf("floppy lacks %s: %s", f, out)
		}
	}
	script, err := exec.Command("mtype", "-i", a.Path, "::NBDBOOT.IPX").CombinedOutput()
	if err != nil || !strings.Contains(string(script), "kernel http://${server}/boot/${mac:hexhyp}/kernel console=ttyS0") {
		t.Errorf("floppy's iPXE script: %v\n%s", err, script)
	}
}

// TestFloppyChains: without a command line the floppy chains the server's
// script for the machine.
func TestFloppyChains(t *testing.T) {
	requireMediaTools(t, Floppy)
	r := build(t, Config{Kind: Floppy, Server: "http://192.0.2.9/"})
	if len(r.URLs) != 1 || r.URLs[0] != "http://192.0.2.9/boot/${mac:hexhyp}/script.ipxe" {
		t.Errorf("floppy fetches %q", r.URLs)
	}
	script, err := exec.Command("mtype", "-i", r.Path, "::NBDBOOT.IPX").CombinedOutput()
	if err != nil || !strings.Contains(string(script), "chain http://192.0.2.9/boot/${mac:hexhyp}/script.ipxe || goto retry") {
		t.Errorf("floppy's iPXE script: %v\n%s", err, script)
	}
	if !strings.Contains(r.String(), "the server's") {
		t.Errorf("report:\n%s", r)
	}
}

// TestBuildErrors: bad input is refused with the parameter named, and an
// existing output file is left as it was.
func TestBuildErrors(t *testing.T) {
	k, i := fakeBoot(t)
	out := filepath.Join(t.TempDir(), "keep.img")
	if err := os.WriteFile(out, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		c    Config
		want string
	}{
		{"bad nbdroot", Config{Kind: USB, Kernel: k, Initramfs: i, Cmdline: "ip=dhcp nbdroot=nbd://:1/lab"}, "nbdroot=nbd://:1/lab"},
		{"no root", Config{Kind: ISO, Kernel: k, Initramfs: i, Cmdline: "ip=dhcp"}, "names no root"},
		{"no kernel", Config{Kind: USB, Initramfs: i, Cmdline: testCmdline}, "kernel and an initramfs are required"},
		{"missing kernel", Config{Kind: USB, Kernel: k + ".gone", Initramfs: i, Cmdline: testCmdline, Loaders: Loaders{Isolinux: os.Args[0], LDLinux: os.Args[0], IsohybridMBR: os.Args[0], GrubEFI: os.Args[0]}}, "kernel: open"},
		{"missing GRUB", Config{Kind: USB, Kernel: k, Initramfs: i, Cmdline: testCmdline, Loaders: Loaders{GrubEFI: "/nonexistent/gcdx64.efi.signed"}}, "grub-efi-amd64-signed"},
		{"missing iPXE", Config{Kind: Floppy, Cmdline: testCmdline, Loaders: Loaders{IPXE: "/nonexistent/ipxe.lkrn"}}, "Debian's ipxe package"},
		{"https floppy", Config{Kind: Floppy, Cmdline: testCmdline, Server: "https://s"}, "want http://"},
		{"https floppy script", Config{Kind: Floppy, Server: "https://s"}, "want http://"},
		{"kernel URL without a command line", Config{Kind: Floppy, KernelURL: "http://s/k"}, "needs a command line"},
		{"script URL and a command line", Config{Kind: Floppy, Cmdline: testCmdline, ScriptURL: "http://s/x.ipxe"}, "takes no command line"},
		{"floppy with a bad root", Config{Kind: Floppy, Cmdline: "nbdroot=nbd://${next-server}:x/lab"}, "nbdroot="},
		{"usb without a command line", Config{Kind: USB, Kernel: k, Initramfs: i}, "command line: empty"},
		{"unknown kind", Config{Kind: "zip", Cmdline: testCmdline}, "unknown medium"},
		{"device as output", Config{Kind: USB, Kernel: k, Initramfs: i, Cmdline: testCmdline, Output: "/dev/null"}, "not a regular file"},
		{"negative timeout", Config{Kind: USB, Kernel: k, Initramfs: i, Cmdline: testCmdline, Timeout: -time.Second}, "negative"},
	}
	for _, tt := range tests {
		if tt.c.Output == "" {
			tt.c.Output = out
		}
		_, err := Build(t.Context(), tt.c)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Build = %v, want an error containing %q", tt.name, err, tt.want)
		}
		if b, _ := os.ReadFile(out); string(b) != "old" {
			t.Fatalf("%s: the existing output was changed", tt.name)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".keep.img.part-*")); len(left) > 0 {
		t.Errorf("partial files left behind: %q", left)
	}
}

func TestParseKind(t *testing.T) {
	for _, s := range []string{"usb", "iso", "floppy"} {
		if k, err := ParseKind(s); err != nil || string(k) != s {
			t.Errorf("ParseKind(%q) = %q, %v", s, k, err)
		}
	}
	if _, err := ParseKind("dvd"); err == nil {
		t.Error("ParseKind(dvd) accepted")
	}
}

func TestEpoch(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "")
	if e, err := Epoch(); err != nil || !e.Equal(defaultEpoch) {
		t.Errorf("Epoch() = %v, %v; want %v", e, err, defaultEpoch)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	if e, err := Epoch(); err != nil || e.Unix() != 1700000000 {
		t.Errorf("Epoch() = %v, %v", e, err)
	}
	for _, bad := range []string{"yesterday", "1000"} {
		t.Setenv("SOURCE_DATE_EPOCH", bad)
		if _, err := Epoch(); err == nil {
			t.Errorf("SOURCE_DATE_EPOCH=%s accepted", bad)
		}
	}
}
