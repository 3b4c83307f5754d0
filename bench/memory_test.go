package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestParseHeldKiB(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     int64
		err      bool
	}{
		{"anon and shmem, file pages left out", "Name:\tnbdserve\nVmHWM:\t  800000 kB\nVmRSS:\t  790000 kB\nRssAnon:\t   12000 kB\nRssFile:\t  778000 kB\nRssShmem:\t      16 kB\n", 12016, false},
		{"kernel thread without the lines", "Name:\tkthreadd\nState:\tS (sleeping)\n", 0, true},
		{"garbage value", "RssAnon:\t x kB\nRssShmem:\t 0 kB\n", 0, true},
	} {
		got, err := parseHeldKiB(strings.NewReader(tc.in))
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%s: got %d, %v; want %d, error %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

// TestMemSamplerSelf: the sampler reads this process's memory and keeps
// a peak of at least the last sample.
func TestMemSamplerSelf(t *testing.T) {
	m := startMemSampler(os.Getpid())
	defer m.Stop()
	now, err := heldKiB(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if p := m.Peak(); p <= 0 || now <= 0 {
		t.Fatalf("peak %d KiB, now %d KiB; want both above 0", p, now)
	}
}

func TestStatTicks(t *testing.T) {
	// pid (comm with a space) state ppid pgrp session tty tpgid flags
	// minflt cminflt majflt cmajflt utime stime cutime cstime ...
	stat := []byte("4242 (nbd server) S 1 4242 4242 0 -1 4194560 10 0 0 0 7 3 20 5 20 0 1 0 100 1000 50")
	if got := statTicks(stat); got != 35 {
		t.Errorf("statTicks = %d, want 7+3+20+5 = 35", got)
	}
	if got := statTicks([]byte("garbage")); got != 0 {
		t.Errorf("statTicks(garbage) = %d, want 0", got)
	}
}

// TestTreeTicksCountsLiveChildren: a running child's CPU is counted
// before it is reaped.
func TestTreeTicksCountsLiveChildren(t *testing.T) {
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; echo done; read x")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); cmd.Wait() }()
	line := make([]byte, 5)
	if _, err := io.ReadFull(out, line); err != nil {
		t.Fatal(err)
	}
	read := func(pid int) int64 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		return statTicks(b)
	}
	self, child := read(os.Getpid()), read(cmd.Process.Pid)
	if child < 5 {
		t.Skipf("the child used %d ticks: too few to tell", child)
	}
	if tree := treeTicks(os.Getpid(), 0); tree < self+child {
		t.Errorf("tree %d ticks, own %d, the busy child %d: the child was not counted", tree, self, child)
	}
}
