package server

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nbdboot/nbdboot/internal/testutil"
)

// Tests against NBD clients nobody here wrote: libnbd's tools, qemu's,
// fio and nbd-client. Every test checks the data, not just exit codes.

// runTool runs a tool and returns its stdout; stderr goes into the failure.
func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	path := testutil.RequireTool(t, name)
	cmd := exec.Command(path, args...)
	cmd.Dir = t.TempDir() // fio and friends may leave files in their working directory
	// nbdsh runs `python3 -m nbd`: prefer the system python that has it.
	cmd.Env = append(os.Environ(), "PATH=/usr/bin:/bin:"+os.Getenv("PATH"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// sparseDisk is a 16 MiB sparse file with 4 KiB of data at 1 MiB and at
// 5 MiB.
func sparseDisk(t *testing.T) (*testServer, string) {
	t.Helper()
	return dataDisk(t, mib, 5*mib)
}

// dataDisk serves a 16 MiB sparse file with 4 KiB of data at each of
// offsets ("disk" and read-only "disk-ro"), and returns its path.
func dataDisk(t *testing.T, offsets ...int64) (*testServer, string) {
	t.Helper()
	tab, path := fileExports(t, 16*mib, func(f *os.File) {
		for _, off := range offsets {
			f.WriteAt(pattern(off, 4096), off)
		}
	})
	return startServer(t, tab, testLimits()), path
}

func TestNbdinfo(t *testing.T) {
	ts, _ := sparseDisk(t)
	var info struct {
		Protocol   string `json:"protocol"`
		Structured bool   `json:"structured"`
		Exports    []struct {
			Name      string   `json:"export-name"`
			Desc      string   `json:"description"`
			Size      int64    `json:"export-size"`
			Contexts  []string `json:"contexts"`
			ReadOnly  bool     `json:"is_read_only"`
			Cache     bool     `json:"can_cache"`
			DF        bool     `json:"can_df"`
			FastZero  bool     `json:"can_fast_zero"`
			Flush     bool     `json:"can_flush"`
			FUA       bool     `json:"can_fua"`
			MultiConn bool     `json:"can_multi_conn"`
			Trim      bool     `json:"can_trim"`
			Zero      bool     `json:"can_zero"`
			MinBlock  int      `json:"block_size_minimum"`
			PrefBlock int      `json:"block_size_preferred"`
			MaxBlock  int      `json:"block_size_maximum"`
		} `json:"exports"`
	}
	out := runTool(t, "nbdinfo", "--json", ts.uri("disk"))
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("nbdinfo --json: %v\n%s", err, out)
	}
	if len(info.Exports) != 1 {
		t.Fatalf("nbdinfo: %d exports", len(info.Exports))
	}
	e := info.Exports[0]
	// NBD_INFO_NAME is the canonical name, pinned to the image version.
	if info.Protocol != "newstyle-fixed" || !info.Structured || unversioned(e.Name) != "disk" || e.Desc != "test disk" ||
		e.Size != 16*mib || len(e.Contexts) != 1 || e.Contexts[0] != "base:allocation" {
		t.Errorf("nbdinfo: %+v", info)
	}
	if e.ReadOnly || !e.Cache || !e.DF || !e.FastZero || !e.Flush || !e.FUA || !e.MultiConn || !e.Trim || !e.Zero {
		t.Errorf("nbdinfo flags: %+v", e)
	}
	if e.MinBlock != 1 || e.PrefBlock != 4096 || e.MaxBlock != 32<<20 {
		t.Errorf("nbdinfo block sizes %d/%d/%d", e.MinBlock, e.PrefBlock, e.MaxBlock)
	}

	out = runTool(t, "nbdinfo", "--json", ts.uri("disk-ro"))
	info.Exports = nil
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatal(err)
	}
	if e := info.Exports[0]; !e.ReadOnly || e.Trim || e.Zero || e.FUA || !e.Flush || !e.MultiConn {
		t.Errorf("nbdinfo disk-ro flags: %+v", e)
	}

	out = runTool(t, "nbdinfo", "--list", "--json", "nbd://"+ts.addr)
	info.Exports = nil
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatal(err)
	}
	if len(info.Exports) != 2 || unversioned(info.Exports[0].Name) != "disk" || info.Exports[0].Desc != "test disk" ||
		unversioned(info.Exports[1].Name) != "disk-ro" || info.Exports[1].Size != 16*mib {
		t.Errorf("nbdinfo --list: %+v", info.Exports)
	}

	// --map: data where it was written, holes elsewhere.
	out = runTool(t, "nbdinfo", "--map", "--totals", ts.uri("disk"))
	// Lines: total bytes | percentage | flags | description.
	var totals []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) == 4 {
			totals = append(totals, f[0]+" "+f[2]+" "+f[3])
		}
	}
	if want := "8192 0 data,16769024 3 hole,zero"; strings.Join(totals, ",") != want {
		t.Errorf("nbdinfo --map --totals: %q, want %q:\n%s", totals, want, out)
	}
	out = runTool(t, "nbdinfo", "--map", ts.uri("disk"))
	want := [][]string{
		{"0", "1048576", "3", "hole,zero"},
		{"1048576", "4096", "0", "data"},
		{"1052672", "4190208", "3", "hole,zero"},
		{"5242880", "4096", "0", "data"},
		{"5246976", "11530240", "3", "hole,zero"},
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(want) {
		t.Fatalf("nbdinfo --map: %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, l := range lines {
		if got := strings.Fields(l); strings.Join(got, " ") != strings.Join(want[i], " ") {
			t.Errorf("nbdinfo --map line %d: %q, want %q", i, got, want[i])
		}
	}
}

func TestNbdcopy(t *testing.T) {
	ts, path := sparseDisk(t)
	dir := t.TempDir()
	src := make([]byte, 16*mib)
	rand.Read(src[:10*mib]) // the last 6 MiB stay zero
	srcPath, backPath := filepath.Join(dir, "src.img"), filepath.Join(dir, "back.img")
	os.WriteFile(srcPath, src, 0o644)
	runTool(t, "nbdcopy", "--connections=4", "--requests=16", srcPath, ts.uri("disk"))
	got, _ := os.ReadFile(path)
	if !bytes.Equal(got, src) {
		t.Fatal("backing file differs from nbdcopy's source")
	}
	runTool(t, "nbdcopy", "--connections=4", ts.uri("disk-ro"), backPath)
	got, _ = os.ReadFile(backPath)
	if !bytes.Equal(got, src) {
		t.Fatal("nbdcopy from the server differs from the source")
	}
}

func TestNbdsh(t *testing.T) {
	ts, path := sparseDisk(t)
	script := `
M = 1 << 20
for f in ("fua", "trim", "zero", "fast_zero", "cache", "df", "multi_conn", "flush"):
    assert getattr(h, "can_" + f)(), f
assert h.can_meta_context("base:allocation")
buf = b"\xab" * 65536
h.pwrite(buf, 0, nbd.CMD_FLAG_FUA)
assert h.pread(65536, 0) == buf
h.flush()
# trim: the 4 KiB of data at 1 MiB
h.trim(65536, M, nbd.CMD_FLAG_FUA)
assert h.pread(65536, M) == bytes(65536)
h.pwrite(buf, 2 * M)
h.zero(65536, 2 * M, nbd.CMD_FLAG_NO_HOLE)
assert h.pread(65536, 2 * M) == bytes(65536)
h.pwrite(buf, 3 * M)
h.zero(65536, 3 * M, nbd.CMD_FLAG_FAST_ZERO | nbd.CMD_FLAG_FUA)
assert h.pread(65536, 3 * M) == bytes(65536)
h.cache(65536, 0)
ext = []
def cb(meta, off, entries, err):
    ext.append((meta, off, list(entries)))
    return 0
h.block_status(4 * M, 0, cb)
meta, off, e = ext[-1]
assert meta == "base:allocation" and off == 0, ext
assert e[0:2] == [65536, 0], e          # data written at 0
assert sum(e[0::2]) <= 4 * M and sum(e[0::2]) > 65536, e
pos = 0
for length, flags in zip(e[0::2], e[1::2]):
    if pos <= M < pos + length:
        assert flags == 3, (pos, e)     # trimmed: hole, zero
    pos += length
h.block_status(4 * M, 0, cb, nbd.CMD_FLAG_REQ_ONE)
assert len(ext[-1][2]) == 2, ext[-1]
chunks = []
def chunk(sub, off, status, err):
    chunks.append((off, len(sub), status))
    return 0
got = h.pread_structured(6 * M, 0, chunk, nbd.CMD_FLAG_DF)
assert len(chunks) == 1 and chunks[0] == (0, 6 * M, nbd.READ_DATA), chunks
assert got[:65536] == buf and got[5 * M:5 * M + 4096] != bytes(4096)
chunks.clear()
got2 = h.pread_structured(6 * M, 0, chunk)
assert got2 == got
assert any(s == nbd.READ_HOLE for _, _, s in chunks), chunks
assert sum(n for _, n, _ in chunks) == 6 * M, chunks
h.shutdown()
print("nbdsh ok")
`
	out := runTool(t, "nbdsh", "--base-allocation", "-u", ts.uri("disk"), "-c", script)
	if !strings.Contains(out, "nbdsh ok") {
		t.Fatalf("nbdsh script did not finish: %s", out)
	}
	got, _ := os.ReadFile(path)
	want := make([]byte, 16*mib)
	copy(want, bytes.Repeat([]byte{0xab}, 65536))
	copy(want[5*mib:], pattern(5*mib, 4096))
	if !bytes.Equal(got, want) {
		t.Error("backing file after the nbdsh script is not what it wrote")
	}
}

func TestQemuImg(t *testing.T) {
	ts, path := sparseDisk(t)
	out := runTool(t, "qemu-img", "compare", "-f", "raw", "-F", "raw", path, ts.uri("disk-ro"))
	if !strings.Contains(out, "Images are identical") {
		t.Errorf("qemu-img compare: %s", out)
	}
	var m []struct {
		Start, Length int64
		Data, Zero    bool
	}
	out = runTool(t, "qemu-img", "map", "--output=json", "-f", "raw", ts.uri("disk"))
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("qemu-img map: %v\n%s", err, out)
	}
	var data []int64
	for _, e := range m {
		if e.Data {
			data = append(data, e.Start, e.Length)
		} else if !e.Zero {
			t.Errorf("qemu-img map: hole that is not zero: %+v", e)
		}
	}
	if want := []int64{mib, 4096, 5 * mib, 4096}; !equalInts(data, want) {
		t.Errorf("qemu-img map data runs %v, want %v", data, want)
	}
	// A differing image is found different.
	other := filepath.Join(t.TempDir(), "other.img")
	os.WriteFile(other, make([]byte, 16*mib), 0o644)
	cmd := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "raw", other, ts.uri("disk"))
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "mismatch at offset 1048576") {
		t.Errorf("qemu-img compare of different images: %v: %s", err, out)
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestQemuIo(t *testing.T) {
	ts, path := sparseDisk(t)
	out := runTool(t, "qemu-io", "-f", "raw", ts.uri("disk"),
		"-c", "write -P 0xab 0 1M",
		"-c", "read -P 0xab 0 1M",
		"-c", "write -z 256k 256k", // WRITE_ZEROES
		"-c", "write -z -u 512k 256k", // WRITE_ZEROES that may punch holes
		"-c", "read -P 0 256k 512k",
		"-c", "write -P 0x77 3M 128k",
		"-c", "write -z -n 3M 64k", // FAST_ZERO, NO_HOLE
		"-c", "write -z -u -n 3136k 64k", // FAST_ZERO
		"-c", "read -P 0 3M 128k",
		"-c", "write -f -P 0xcd 4M 64k", // FUA
		"-c", "write -P 0xee 8M 1M",
		"-c", "discard 8M 1M", // TRIM
		"-c", "flush",
		"-c", "read -P 0xcd 4M 64k",
		"-c", "read -P 0xab 0 256k",
	)
	if strings.Contains(out, "failed") || strings.Count(out, "read ") != 5 || strings.Count(out, "wrote ") != 8 {
		t.Fatalf("qemu-io:\n%s", out)
	}
	got, _ := os.ReadFile(path)
	want := make([]byte, 16*mib)
	copy(want, bytes.Repeat([]byte{0xab}, mib))
	clear(want[256<<10 : 768<<10])
	copy(want[mib:], pattern(mib, 4096))
	copy(want[4*mib:], bytes.Repeat([]byte{0xcd}, 64<<10))
	copy(want[5*mib:], pattern(5*mib, 4096))
	// The discarded range's contents are unspecified: punch-hole makes it zero.
	if !bytes.Equal(got, want) {
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("backing file after qemu-io differs first at %d: %#x, want %#x", i, got[i], want[i])
			}
		}
	}
}

func TestFio(t *testing.T) {
	ts, path := sparseDisk(t)
	out := runTool(t, "fio", "--name=verify", "--ioengine=nbd", "--uri="+ts.uri("disk"),
		"--rw=randwrite", "--bs=4k", "--size=8M", "--iodepth=16", "--verify=crc32c",
		"--do_verify=1", "--verify_fatal=1", "--verify_state_save=0", "--randrepeat=0")
	if !strings.Contains(out, "err= 0") {
		t.Fatalf("fio:\n%s", out)
	}
	// fio's verify headers carry a magic in every 4 KiB block it wrote.
	got, _ := os.ReadFile(path)
	zero := make([]byte, 4096)
	for off := 0; off < 8*mib; off += 4096 {
		if bytes.Equal(got[off:off+4096], zero) {
			t.Fatalf("block at %d never written by fio", off)
		}
	}
}

func TestNbdClientList(t *testing.T) {
	ts, _ := sparseDisk(t)
	out := runTool(t, "nbd-client", "-l", "127.0.0.1", ts.port())
	if !strings.Contains(out, "disk: test disk") || !strings.Contains(out, "\ndisk-ro") {
		t.Errorf("nbd-client -l:\n%s", out)
	}
}

// TestCOWWithClients: nbdcopy writes a client's overlay with four
// connections, reads it back, and qemu-img finds the base unchanged and
// another client's view equal to it.
func TestCOWWithClients(t *testing.T) {
	ts, base, _ := cowServer(t, COWEphemeral)
	dir := t.TempDir()
	src := make([]byte, 4*mib)
	rand.Read(src[:3*mib])
	srcPath, backPath := filepath.Join(dir, "src.img"), filepath.Join(dir, "back.img")
	os.WriteFile(srcPath, src, 0o644)
	runTool(t, "nbdcopy", "--connections=4", srcPath, ts.uri("lab/pc1"))
	runTool(t, "nbdcopy", ts.uri("lab/pc1"), backPath)
	if got, _ := os.ReadFile(backPath); !bytes.Equal(got, src) {
		t.Fatal("lab/pc1 does not hold what nbdcopy wrote")
	}
	if out := runTool(t, "qemu-img", "compare", "-f", "raw", "-F", "raw", base, ts.uri("lab/pc2")); !strings.Contains(out, "identical") {
		t.Errorf("lab/pc2 differs from the base: %s", out)
	}
	if out := runTool(t, "qemu-img", "compare", "-f", "raw", "-F", "raw", srcPath, ts.uri("lab/pc1")); !strings.Contains(out, "identical") {
		t.Errorf("lab/pc1 differs from the source: %s", out)
	}
}
