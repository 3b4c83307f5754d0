package server

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nbdboot/nbdboot/internal/disk/powerloss"
	"golang.org/x/sys/unix"
)

// A file export through the power-loss model: random WRITE, FUA WRITE,
// WRITE_ZEROES, TRIM and FLUSH, a power cut, and after it every sector
// must read as it was at the last FLUSH (or its last FUA write), or as
// one of the versions requests gave it since: never anything else. A
// failing trial prints its seed; POWERLOSS_SEED=n reruns it alone,
// POWERLOSS_TIME=d runs trials for d (make soak).
func TestPowerLossFileBackend(t *testing.T) {
	trials := uint64(40)
	first := uint64(0)
	var deadline time.Time
	if s := os.Getenv("POWERLOSS_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		first, trials = seed, 1
	} else if d := os.Getenv("POWERLOSS_TIME"); d != "" {
		dur, err := time.ParseDuration(d)
		if err != nil {
			t.Fatalf("POWERLOSS_TIME: %v", err)
		}
		deadline, first, trials = time.Now().Add(dur), uint64(time.Now().UnixNano()), 1<<62
	}
	n := 0
	for seed := first; seed < first+trials; seed++ {
		if !deadline.IsZero() && time.Now().After(deadline) {
			break
		}
		if err := fileBackendTrial(t, seed); err != nil {
			t.Fatalf("seed %d: %v\nrerun: POWERLOSS_SEED=%d go test -run TestPowerLossFileBackend ./server", seed, err, seed)
		}
		n++
	}
	t.Logf("power-loss model, file export: %d trials, %d power cuts, 0 violations", n, 4*n)
}

const plSize = 64 << 10

// plOpen makes a plSize-byte file of random content under a power-loss
// model and opens it as a backend through the model.
func plOpen(t *testing.T, seed uint64) (*FileBackend, *powerloss.Model, string, []byte) {
	t.Helper()
	root := t.TempDir()
	path := filepath.Join(root, "disk.img")
	content := make([]byte, plSize)
	rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}).Read(content)
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := powerloss.New(root, seed)
	if err != nil {
		t.Fatal(err)
	}
	b, err := openFileFS(m, path, false)
	if err != nil {
		t.Fatal(err)
	}
	return b, m, path, content
}

func fileBackendTrial(t *testing.T, seed uint64) error {
	b, m, path, content := plOpen(t, seed)
	r := rand.New(rand.NewPCG(seed, 5))
	const ss = powerloss.SectorSize
	synced := append([]byte(nil), content...)
	versions := map[int][][]byte{} // sector -> versions since its last sync
	// seen records the sectors of [off, off+n) as the backend reads them now.
	seen := func(off, n int64) error {
		cur := make([]byte, plSize)
		if _, err := b.ReadAt(cur, 0); err != nil {
			return err
		}
		for s := int(off / ss); int64(s)*ss < off+n; s++ {
			versions[s] = append(versions[s], append([]byte(nil), cur[s*ss:(s+1)*ss]...))
		}
		return nil
	}
	for cut := range 4 {
		for range 10 + r.IntN(30) {
			off := r.Int64N(plSize - 1)
			n := r.Int64N(min(16<<10, plSize-off)) + 1
			var err error
			switch k := r.IntN(10); {
			case k < 1:
				err = b.Sync()
				if err == nil {
					b.ReadAt(synced, 0)
					clear(versions)
				}
				continue
			case k < 4:
				err = b.WriteAtFUA(bytes.Repeat([]byte{byte(r.IntN(255) + 1)}, int(n)), off)
				if err == nil {
					// Its sectors are durable as they read now (the
					// disk writes whole sectors: the rest of a partial
					// one too).
					cur := make([]byte, plSize)
					b.ReadAt(cur, 0)
					for s := int(off / ss); int64(s)*ss < off+n; s++ {
						copy(synced[s*ss:], cur[s*ss:(s+1)*ss])
						delete(versions, s)
					}
					continue
				}
			case k < 7:
				_, err = b.WriteAt(bytes.Repeat([]byte{byte(r.IntN(255) + 1)}, int(n)), off)
			case k < 8:
				err = b.Trim(off, n)
			default:
				err = b.Zero(off, n, r.IntN(2) == 0, false)
			}
			if err != nil {
				return fmt.Errorf("request %d+%d: %w", off, n, err)
			}
			if err := seen(off, n); err != nil {
				return err
			}
		}
		b.Close()
		if err := m.Crash(); err != nil {
			return err
		}
		got, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if len(got) != plSize {
			return fmt.Errorf("after cut %d the file has %d bytes, want %d", cut, len(got), plSize)
		}
		for s := 0; s*ss < plSize; s++ {
			g := got[s*ss : (s+1)*ss]
			ok := bytes.Equal(g, synced[s*ss:(s+1)*ss])
			for _, v := range versions[s] {
				ok = ok || bytes.Equal(g, v)
			}
			if !ok {
				what := "neither as flushed nor as any later version"
				if len(versions[s]) == 0 {
					what = "not as flushed (FLUSH or FUA), untouched since"
				}
				return fmt.Errorf("after cut %d: sector %d (offset %d) reads %s", cut, s, s*ss, what)
			}
		}
		synced = got
		clear(versions)
		if b, err = openFileFS(m, path, false); err != nil {
			return err
		}
	}
	return b.Close()
}

// failOnce makes the model fail the next call of op with errno.
func failOnce(m *powerloss.Model, op powerloss.Op, errno error) {
	done := false
	m.Fail(func(o powerloss.Op, _ string) error {
		if o == op && !done {
			done = true
			return errno
		}
		return nil
	})
}

// TestFileBackendFailedSyncIsSticky: after a failed fdatasync (or a
// failed RWF_DSYNC write), a later fdatasync may succeed although the
// pages it should have written are gone: every later FLUSH and FUA write
// must fail. A write that found no space is not such a failure.
func TestFileBackendFailedSyncIsSticky(t *testing.T) {
	for _, tc := range []struct {
		name   string
		op     powerloss.Op
		errno  unix.Errno
		sticky bool
		first  func(b *FileBackend) error
	}{
		{"fdatasync EIO", powerloss.OpDatasync, unix.EIO, true, func(b *FileBackend) error { return b.Sync() }},
		{"fdatasync ENOSPC", powerloss.OpDatasync, unix.ENOSPC, true, func(b *FileBackend) error { return b.Sync() }},
		{"RWF_DSYNC EIO", powerloss.OpWriteSync, unix.EIO, true, func(b *FileBackend) error { return b.WriteAtFUA([]byte{1}, 0) }},
		{"RWF_DSYNC ENOSPC", powerloss.OpWriteSync, unix.ENOSPC, false, func(b *FileBackend) error { return b.WriteAtFUA([]byte{1}, 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, m, _, _ := plOpen(t, 1)
			defer b.Close()
			b.WriteAt([]byte{2}, 100)
			failOnce(m, tc.op, tc.errno)
			if err := tc.first(b); !errors.Is(err, tc.errno) {
				t.Fatalf("the failing call returned %v, want %v", err, tc.errno)
			}
			syncErr, fuaErr := b.Sync(), b.WriteAtFUA([]byte{3}, 200)
			if tc.sticky && (!errors.Is(syncErr, tc.errno) || !errors.Is(fuaErr, tc.errno)) {
				t.Errorf("after the failure: FLUSH %v, FUA write %v; want both to fail with %v", syncErr, fuaErr, tc.errno)
			}
			if !tc.sticky && (syncErr != nil || fuaErr != nil) {
				t.Errorf("after a write without space: FLUSH %v, FUA write %v; want both to work", syncErr, fuaErr)
			}
		})
	}
}

// TestFileBackendFUAWithoutRWFDSYNC: where pwritev2 lacks RWF_DSYNC the
// FUA write falls back to a write and fdatasync, and survives a cut.
func TestFileBackendFUAWithoutRWFDSYNC(t *testing.T) {
	for seed := range uint64(16) {
		b, m, path, _ := plOpen(t, seed)
		m.Fail(func(op powerloss.Op, _ string) error {
			if op == powerloss.OpWriteSync {
				return unix.EOPNOTSUPP
			}
			return nil
		})
		want := bytes.Repeat([]byte{0xfa}, 8192)
		if err := b.WriteAtFUA(want, 4096); err != nil {
			t.Fatalf("FUA write: %v", err)
		}
		b.Close()
		if err := m.Crash(); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		if !bytes.Equal(got[4096:4096+8192], want) {
			t.Fatalf("seed %d: the FUA write is lost by a power cut", seed)
		}
		if m.Calls(powerloss.OpDatasync) != 1 {
			t.Errorf("fdatasync called %d times, want once", m.Calls(powerloss.OpDatasync))
		}
	}
}
