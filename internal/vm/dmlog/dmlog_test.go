package dmlog

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/cow"
	"github.com/nbdboot/nbdboot/initramfs"
	"github.com/nbdboot/nbdboot/internal/testutil"
	"github.com/nbdboot/nbdboot/internal/vm"
)

// TestPowerCutReplay runs the guest's overlay requests on ext4 over a
// log-writes device in a qemu guest, then replays the log to every
// Sync's mark and to the points between consecutive marks, and checks
// each state: e2fsck replays ext4's journal, the overlay opens, every
// block flushed by the last Sync before the point reads exactly, every
// other block as flushed or as one of the versions requests gave it
// since, and the base file is never written (it is not on the disk).
// One seed here; DMLOG_SEEDS=n runs n more (make soak).
func TestPowerCutReplay(t *testing.T) {
	for _, tool := range []string{"mke2fs", "e2fsck", "debugfs"} {
		testutil.RequireTool(t, tool)
	}
	kernel, root := vm.Kernel(t), vm.KernelRoot(t)
	initrd := filepath.Join(t.TempDir(), "dmlog.cpio.gz")
	c := initramfs.Config{
		Output:      initrd,
		Init:        "github.com/nbdboot/nbdboot/internal/vm/dmlog/guest",
		KernelRoot:  root,
		Modules:     []string{"virtio_pci", "virtio_blk", "crc32c_generic", "ext4", "dm_mod", "dm_log_writes"},
		Compression: initramfs.Gzip,
		Dir:         "../../..",
	}
	if _, err := initramfs.Build(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	seeds := []uint64{1}
	if s := os.Getenv("DMLOG_SEEDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("DMLOG_SEEDS: %v", err)
		}
		base := uint64(time.Now().UnixNano())
		for i := range n {
			seeds = append(seeds, base+uint64(i))
		}
	}
	states, violations := 0, 0
	for _, seed := range seeds {
		n, err := replayTrial(t, kernel, initrd, seed)
		states += n
		if err != nil {
			violations++
			t.Errorf("seed %d: %v", seed, err)
		}
	}
	t.Logf("dm-log-writes replay: %d runs, %d replayed states, %d violations", len(seeds), states, violations)
}

const nops = 60

func replayTrial(t *testing.T, kernel, initrd string, seed uint64) (int, error) {
	dir := t.TempDir()
	pristine, data, logImg := filepath.Join(dir, "pristine.img"), filepath.Join(dir, "data.img"), filepath.Join(dir, "log.img")
	if out, err := exec.Command("mke2fs", "-q", "-t", "ext4", "-F", pristine, "16M").CombinedOutput(); err != nil {
		t.Fatalf("mke2fs: %v\n%s", err, out)
	}
	copyFile(t, pristine, data)
	if err := os.WriteFile(logImg, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(logImg, 256<<20); err != nil {
		t.Fatal(err)
	}
	m := vm.Start(t, vm.Options{
		Kernel:    kernel,
		Initramfs: initrd,
		Cmdline:   fmt.Sprintf("quiet dmlog.seed=%d dmlog.ops=%d", seed, nops),
		Args: []string{
			"-drive", "file=" + data + ",format=raw,if=virtio",
			"-drive", "file=" + logImg + ",format=raw,if=virtio",
		},
	})
	match, err := m.Expect(`DMLOG-(DONE|FAIL) (.*)`, 5*time.Minute)
	if err != nil {
		t.Fatalf("guest: %v", err)
	}
	if match[1] == "FAIL" {
		t.Fatalf("guest: %s", match[2])
	}
	m.WaitExit(60 * time.Second)

	lf, err := os.Open(logImg)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	l, err := ReadLog(lf)
	if err != nil {
		t.Fatal(err)
	}
	// The points: every mark, and the middle of the entries between
	// consecutive marks (and before the first).
	ops := Ops(seed, nops)
	marks := map[string]int{}
	for i := range ops {
		marks[MarkName(i)] = i
	}
	type point struct {
		entries int // log entries applied
		synced  int // ops [0, synced) are flushed
		upto    int // ops [0, upto) may have happened
	}
	var points []point
	lastEntry, lastOp := 0, 0
	for i, e := range l.Entries {
		if e.Flags&FlagMark == 0 {
			continue
		}
		op, ok := marks[e.Mark]
		if !ok {
			continue
		}
		if mid := (lastEntry + i) / 2; mid > lastEntry {
			points = append(points, point{mid, lastOp, op + 1})
		}
		points = append(points, point{i + 1, op + 1, op + 1})
		lastEntry, lastOp = i+1, op+1
	}
	if len(points) == 0 {
		return 0, fmt.Errorf("the log of %d entries has no sync marks", len(l.Entries))
	}
	img, err := os.OpenFile(filepath.Join(dir, "replay.img"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	for _, p := range points {
		if err := checkPoint(t, l, pristine, img, ops, p.entries, p.synced, p.upto); err != nil {
			return len(points), fmt.Errorf("log replayed to entry %d (ops before %d flushed): %w", p.entries, p.synced, err)
		}
	}
	return len(points), nil
}

// checkPoint replays the log's first n entries onto the pristine file
// system and checks the overlay there.
func checkPoint(t *testing.T, l *Log, pristine string, img *os.File, ops []Op, n, synced, upto int) error {
	b, err := os.ReadFile(pristine)
	if err != nil {
		return err
	}
	if err := img.Truncate(0); err != nil {
		return err
	}
	if _, err := img.WriteAt(b, 0); err != nil {
		return err
	}
	if err := l.Replay(img, 0, n); err != nil {
		return err
	}
	// e2fsck replays the journal as a mount would, and must find the
	// file system consistent after it (exit status 0 or 1: fixed).
	fsck := exec.Command("e2fsck", "-fy", img.Name())
	if out, err := fsck.CombinedOutput(); err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 1 {
			return fmt.Errorf("e2fsck: %v\n%s", err, out)
		}
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		return err
	}
	if o, err := exec.Command("debugfs", "-R", "rdump /state "+out, img.Name()).CombinedOutput(); err != nil {
		return fmt.Errorf("debugfs rdump: %v\n%s", err, o)
	}
	want := Base()
	for _, o := range ops[:synced] {
		o.Apply(want)
	}
	versions := map[int64][][]byte{}
	cur := append([]byte(nil), want...)
	for _, o := range ops[synced:upto] {
		o.Apply(cur)
		if o.Kind == 's' {
			continue
		}
		for b := o.Off / BlockSize; b <= (o.Off+o.N-1)/BlockSize; b++ {
			versions[b] = append(versions[b], append([]byte(nil), cur[b*BlockSize:(b+1)*BlockSize]...))
		}
	}
	bf := filepath.Join(t.TempDir(), "base.img")
	if err := os.WriteFile(bf, Base(), 0o400); err != nil {
		return err
	}
	f, err := os.Open(bf)
	if err != nil {
		return err
	}
	defer f.Close()
	ovDir := filepath.Join(out, "state", "disk", "client")
	if _, err := os.Stat(ovDir); err != nil && !bytes.Equal(want, Base()) {
		return fmt.Errorf("the overlay directory is gone, with flushed changes: %w", err)
	}
	ov, err := cow.Open(ovDir, BaseFile{File: f}, cow.Options{})
	if err != nil {
		return fmt.Errorf("the overlay does not open: %w", err)
	}
	defer ov.Close()
	got := make([]byte, BaseSize)
	if _, err := ov.ReadAt(got, 0); err != nil {
		return err
	}
	for b := int64(0); b < BaseSize/BlockSize; b++ {
		g := got[b*BlockSize : (b+1)*BlockSize]
		ok := bytes.Equal(g, want[b*BlockSize:(b+1)*BlockSize])
		for _, v := range versions[b] {
			ok = ok || bytes.Equal(g, v)
		}
		if !ok {
			return fmt.Errorf("block %d reads neither as flushed nor as a later version", b)
		}
	}
	return nil
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
