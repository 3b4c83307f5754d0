package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// memSampleEvery is how often a server's memory is sampled.
const memSampleEvery = 20 * time.Millisecond

// memSampler follows the peak of the memory a server process holds: its
// anonymous and shared-memory resident pages (RssAnon + RssShmem in
// /proc/PID/status), sampled every memSampleEvery. Pages of files it maps
// (the served image, copy-on-write overlays' data files: nbdserve sends
// large reads from read-only mappings of them) are the page cache's,
// shared and reclaimable, and are left out for every server alike. A
// high-water mark (VmHWM) can't leave them out: it counts them, and an
// overlay unmapped before the end can no longer be subtracted.
type memSampler struct {
	pid  int
	stop chan struct{}
	done chan struct{}

	mu   sync.Mutex
	peak int64 // KiB; -1 until a sample was read
}

func startMemSampler(pid int) *memSampler {
	m := &memSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{}), peak: -1}
	go m.run()
	return m
}

func (m *memSampler) run() {
	defer close(m.done)
	t := time.NewTicker(memSampleEvery)
	defer t.Stop()
	for {
		m.sample()
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
	}
}

func (m *memSampler) sample() {
	kib, err := heldKiB(m.pid)
	if err != nil {
		return
	}
	m.mu.Lock()
	m.peak = max(m.peak, kib)
	m.mu.Unlock()
}

// Peak takes a last sample and returns the peak in KiB, -1 if no sample
// could be read.
func (m *memSampler) Peak() int64 {
	m.sample()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.peak
}

// Stop ends the sampling; Peak still answers.
func (m *memSampler) Stop() {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	<-m.done
}

// heldKiB reads RssAnon + RssShmem of process pid.
func heldKiB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	defer f.Close()
	kib, err := parseHeldKiB(f)
	if err != nil {
		return 0, fmt.Errorf("read memory of process %d: %w", pid, err)
	}
	return kib, nil
}

// parseHeldKiB sums the RssAnon and RssShmem lines of a /proc/PID/status.
func parseHeldKiB(r io.Reader) (int64, error) {
	var sum int64
	found := 0
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "RssAnon" && key != "RssShmem") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q: %w", key, v, err)
		}
		sum += n
		found++
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if found != 2 {
		return 0, fmt.Errorf("RssAnon and RssShmem: %d of 2 found", found)
	}
	return sum, nil
}
