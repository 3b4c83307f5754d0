package nbdnl

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fakeSys builds a /sys/block and /dev tree: files maps paths relative to
// the root to contents.
func fakeSys(t *testing.T, files map[string]string) Sys {
	t.Helper()
	root := t.TempDir()
	s := Sys{Block: filepath.Join(root, "sys/block"), Dev: filepath.Join(root, "dev")}
	for _, d := range []string{s.Block, s.Dev} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, content := range files {
		writeFile(t, filepath.Join(root, p), content)
	}
	return s
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSysAttributes(t *testing.T) {
	s := fakeSys(t, map[string]string{
		"sys/block/nbd0/size":    "2097152\n",
		"sys/block/nbd0/pid":     "123\n",
		"sys/block/nbd0/backend": "root-export\n",
		"sys/block/nbd1/size":    "0\n",
		"sys/block/nbd10/size":   "0\n",
		"sys/block/nbd2/size":    "0\n",
		"sys/block/nbd2/pid":     "77\n", // connected, size not yet set
		"sys/block/sda/size":     "8\n",
		"sys/block/nbd0p1/size":  "8\n", // not a whole device
	})
	devs, err := s.Devices()
	if err != nil || !reflect.DeepEqual(devs, []uint32{0, 1, 2, 10}) {
		t.Errorf("Devices = %v, %v", devs, err)
	}
	if pid, ok, err := s.PID(0); pid != 123 || !ok || err != nil {
		t.Errorf("PID(0) = %d, %v, %v", pid, ok, err)
	}
	if _, ok, err := s.PID(1); ok || err != nil {
		t.Errorf("PID(1) = ok %v, %v; want not connected", ok, err)
	}
	if b, ok, err := s.Backend(0); b != "root-export" || !ok || err != nil {
		t.Errorf("Backend(0) = %q, %v, %v", b, ok, err)
	}
	if size, err := s.Size(0); size != 1<<30 || err != nil {
		t.Errorf("Size(0) = %d, %v", size, err)
	}
	if _, err := s.Size(5); err == nil {
		t.Error("Size of a missing device succeeded")
	}
	if idx, err := s.FreeDevice(); idx != 1 || err != nil {
		t.Errorf("FreeDevice = %d, %v; want 1", idx, err)
	}
	if got := s.Node(4); got != filepath.Join(s.Dev, "nbd4") {
		t.Errorf("Node(4) = %q", got)
	}
}

func TestSysBadPID(t *testing.T) {
	s := fakeSys(t, map[string]string{"sys/block/nbd0/pid": "x\n"})
	if _, _, err := s.PID(0); err == nil || !strings.Contains(err.Error(), "nbd0/pid") {
		t.Errorf("PID error = %v", err)
	}
}

func TestFreeDeviceNone(t *testing.T) {
	s := fakeSys(t, map[string]string{"sys/block/nbd0/size": "8\n"})
	if _, err := s.FreeDevice(); err == nil || !strings.Contains(err.Error(), "nbds_max") {
		t.Errorf("FreeDevice error = %v", err)
	}
}

func TestWaitPartition(t *testing.T) {
	s := fakeSys(t, map[string]string{
		"sys/block/nbd3/nbd3p1/partition": "1\n",
		"dev/nbd3p1":                      "",
	})
	got, err := s.WaitPartition(t.Context(), 3, 1, 10*time.Second)
	if err != nil || got != filepath.Join(s.Dev, "nbd3p1") {
		t.Fatalf("WaitPartition = %q, %v", got, err)
	}

	// Appears while waiting.
	done := make(chan error, 1)
	go func() {
		p := filepath.Join(s.Block, "nbd3/nbd3p2")
		err := os.Mkdir(p, 0o755)
		if err == nil {
			err = os.WriteFile(filepath.Join(s.Dev, "nbd3p2"), nil, 0o644)
		}
		done <- err
	}()
	if _, err := s.WaitPartition(t.Context(), 3, 2, 10*time.Second); err != nil {
		t.Errorf("WaitPartition(p2): %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Sysfs entry without a node: the error says what is missing.
	writeFile(t, filepath.Join(s.Block, "nbd3/nbd3p3/partition"), "3\n")
	_, err = s.WaitPartition(t.Context(), 3, 3, 30*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "devtmpfs") {
		t.Errorf("WaitPartition(p3) error = %v, want a devtmpfs hint", err)
	}
	_, err = s.WaitPartition(t.Context(), 3, 4, 30*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "nbd3p4 does not exist") {
		t.Errorf("WaitPartition(p4) error = %v", err)
	}
	if _, err := s.WaitPartition(t.Context(), 3, 0, time.Second); err == nil {
		t.Error("partition 0 accepted")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.WaitPartition(ctx, 3, 9, time.Minute); err == nil {
		t.Error("cancelled wait succeeded")
	}
}

func TestWaitConnected(t *testing.T) {
	s := fakeSys(t, map[string]string{"sys/block/nbd1/size": "0\n"})
	done := make(chan error, 1)
	go func() {
		tmp := filepath.Join(s.Block, "nbd1/.pid")
		err := os.WriteFile(tmp, []byte("42\n"), 0o644)
		if err == nil {
			err = os.Rename(tmp, filepath.Join(s.Block, "nbd1/pid"))
		}
		done <- err
	}()
	if err := s.WaitConnected(t.Context(), 1, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s.WaitConnected(t.Context(), 2, 20*time.Millisecond); err == nil || !strings.Contains(err.Error(), "/dev/nbd2") {
		t.Errorf("WaitConnected(2) error = %v", err)
	}
}

func TestFreeDeviceNoDriver(t *testing.T) {
	s := fakeSys(t, map[string]string{"sys/block/sda/size": "8\n"})
	if _, err := s.FreeDevice(); err == nil || !strings.Contains(err.Error(), "nbd driver loaded") {
		t.Errorf("FreeDevice error = %v", err)
	}
}
